import django.db.models.deletion
from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """build_cache_registry loses its single-column owner_id index: build_cache_owner_idx (owner_id, created_at)
    leads with the same column and serves the foreign key's checks and every owner lookup, while each completion
    wrote both."""

    dependencies = [
        ("builds", "0038_rollup_marks"),
        ("licensing", "0009_entitlements"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="buildcacheentry",
                    name="owner",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="cache_entries",
                        to="licensing.customer",
                    ),
                ),
            ],
            database_operations=[],
        ),
        RunSQLFile("builds", "0039_cache_owner_index"),
    ]
