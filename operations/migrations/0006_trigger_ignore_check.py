"""django-pgtrigger's ignore check without a subtransaction when nothing is ignored
(operations/sql/0006_trigger_ignore_check.sql). It runs after every migration that installs a django-pgtrigger
trigger, since each such installation writes the library's version again."""

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
