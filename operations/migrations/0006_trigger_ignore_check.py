"""django-pgtrigger's ignore check without a subtransaction when nothing is ignored
(operations/sql/0006_trigger_ignore_check.sql). It depends on the last migration of every app whose migrations
install django-pgtrigger triggers, since each installation writes the library's version again; a later one must be
followed by a migration that runs the file's statement again (tests/operations/test_trigger_ignore_check.py)."""

from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0005_archive_month_rollup"),
        ("builds", "0050_daily_mark_gate"),
        ("licensing", "0009_entitlements"),
        ("intake", "0012_intake_view_rollups"),
    ]

    operations = [
        RunSQLFile("operations", "0006_trigger_ignore_check"),
    ]
