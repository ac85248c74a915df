"""A month of the access log moved whole to the archive leaves the cache access rollup by the drop of its partition
of that month (operations/sql/0005_archive_month_rollup.sql), now that the rollup is partitioned by month
(builds 0041)."""

from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0004_archive_partitions"),
        ("builds", "0041_cache_month_rollup"),
    ]

    operations = [
        RunSQLFile("operations", "0005_archive_month_rollup"),
    ]
