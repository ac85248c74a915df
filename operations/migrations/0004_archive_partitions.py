"""The access-log archive by partition (issue 15): build_access_log_archive becomes partitioned by month on
accessed_at, and archive_build_access_log moves a month lying wholly outside the retention by detaching it from
build_access_log and attaching it to the archive (operations/sql/0004_archive_partitions.sql).

Not atomic, like builds 0031: the CHECK constraint is validated and the unique index on (id, accessed_at) built
concurrently, each in its own transaction, before the short swap. The model state does not change: the ORM still
treats ``id`` as the primary key (ids are build_access_log's, unique); the database's primary key is
(id, accessed_at), as PostgreSQL requires of a partitioned table."""

from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("operations", "0003_archive_plural"),
        ("builds", "0033_dashboard_rollup"),
    ]

    operations = [
        RunSQLFile("operations", "0004_archive_partitions"),
        migrations.RunSQL(
            # DO, not SELECT: export_sql records only statements that change something.
            sql=[
                "DO $$ BEGIN PERFORM access_log_archive_convert_prepare(); END $$",
                "ALTER TABLE build_access_log_archive VALIDATE CONSTRAINT build_access_log_archive_partition_bound",
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS build_access_log_archive_id_accessed_at_key"
                " ON build_access_log_archive (id, accessed_at)",
                "DO $$ BEGIN PERFORM access_log_archive_convert_swap(); END $$",
            ],
            reverse_sql=["DO $$ BEGIN PERFORM access_log_archive_unconvert(); END $$"],
        ),
    ]
