from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("intake", "0002_conversation_stats")]

    operations = [RunSQLFile("intake", "0003_expire_old_conversations")]
