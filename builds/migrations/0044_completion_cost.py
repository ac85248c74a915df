import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """A completion's cache registration writes and reads less (builds/sql/0044_completion_cost.sql): the month
    rollup's pricing trigger does not fire for an entry created now (it has no hits to price), the retirement of
    the other visibility's entry probes the unique key, the owner index and the owners' storage index become one,
    and the architectures' GIN index (no reader) goes."""

    dependencies = [
        ("builds", "0043_slot_waiters"),
        ("licensing", "0009_entitlements"),
    ]

    operations = [
        RunSQLFile("builds", "0044_completion_cost"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="buildcacheentry", name="build_cache_arch_gin"),
                migrations.RemoveIndex(model_name="buildcacheentry", name="build_cache_owner_storage_idx"),
                migrations.RemoveIndex(model_name="buildcacheentry", name="build_cache_owner_idx"),
                migrations.AddIndex(
                    model_name="buildcacheentry",
                    index=models.Index(
                        fields=["owner"],
                        include=("visibility", "size_bytes", "deleted_at"),
                        name="build_cache_owner_idx",
                    ),
                ),
            ],
            database_operations=[],
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="buildcacheentry",
            name="build_cache_access_reprice_insert",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="buildcacheentry",
            trigger=pgtrigger.compiler.Trigger(
                name="build_cache_access_reprice_insert",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (NEW.created_at < now())",
                    execute="build_cache_access_reprice()",
                    func="RAISE EXCEPTION 'unused: the trigger executes build_cache_access_reprice()';",
                    hash="09f880725acb625e2404ee96cb1a5dd44339ef66",
                    operation="INSERT",
                    pgid="pgtrigger_build_cache_access_reprice_insert_bc28a",
                    table="build_cache_registry",
                    when="AFTER",
                ),
            ),
        ),
    ]
