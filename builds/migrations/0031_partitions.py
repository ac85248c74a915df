"""Monthly range partitions (issue 15): build_events, build_metrics, build_logs and build_access_log become
partitioned by their creation time, with the functions every partitioned table shares (ensure_partitions,
partition_drain_default, partition_drop_before) and retention by drop in cleanup_old_build_logs
(builds/sql/0031_partitions.sql).

Not atomic: for each table the CHECK constraint is validated and the unique index on (id, created_at) built
concurrently, each in its own transaction while workers keep writing, before the short swap. The model state does
not change: the ORM still treats ``id`` as the primary key (ids stay unique, from one identity sequence per table);
the database's primary key is (id, <creation time>), as PostgreSQL requires of a partitioned table."""

from django.db import migrations

from honua.sql_migrations import ConvertToPartitions, RunSQLFile


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("builds", "0029_claim_pauses"),
    ]

    operations = [
        RunSQLFile("builds", "0031_partitions"),
        ConvertToPartitions("build_events", "created_at"),
        ConvertToPartitions("build_metrics", "recorded_at"),
        ConvertToPartitions("build_logs", "created_at"),
        ConvertToPartitions("build_access_log", "accessed_at"),
    ]
