from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """A dump restores with pg_restore: manifest_hash, which build_manifests' CHECK constraint calls, no longer
    depends on the caller's search_path (honua/sql/0004_restorable_functions.sql)."""

    dependencies = [
        ("honua", "0003_ledger_version"),
        ("builds", "0014_manifest_limits"),
    ]

    operations = [RunSQLFile("honua", "0004_restorable_functions")]
