"""Monthly range partitions for conversation_messages (issue 15), by created_at, with the functions of builds
0031 (honua.sql_migrations.ConvertToPartitions). Not atomic, for the same reason: the constraint and the unique
index on (id, created_at) are prepared while the intake keeps writing; only the swap locks the table, briefly.
After console 0002, whose full-text index the partitioned table takes over by name."""

from django.db import migrations

from honua.sql_migrations import ConvertToPartitions


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("intake", "0009_seed_model_prices"),
        ("builds", "0031_partitions"),
        ("console", "0002_message_search"),
    ]

    operations = [
        ConvertToPartitions("conversation_messages", "created_at"),
    ]
