from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """Manifest limits: depth (checked before the recursive canonicalisation) and canonical size (issue 11)."""

    dependencies = [
        ("builds", "0013_cache_rollup"),
    ]

    operations = [
        RunSQLFile("builds", "0014_manifest_limits"),
    ]
