import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """The daily rollup's update trigger on build_queue without its WHEN clause; build_daily_rollup_mark makes the
    same test first (builds/sql/0050_daily_mark_gate.sql). PostgreSQL prepared the 8 KB clause again for the
    claim's and the completion's updates of every build, only to find it false.
    """

    dependencies = [
        ("builds", "0049_completion_registration"),
    ]

    operations = [
        RunSQLFile("builds", "0050_daily_mark_gate"),
        pgtrigger.migrations.RemoveTrigger(
            model_name="build",
            name="build_daily_rollup_mark_update",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="build",
            trigger=pgtrigger.compiler.Trigger(
                name="build_daily_rollup_mark_update",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    execute="build_daily_rollup_mark()",
                    func="RAISE EXCEPTION 'unused: the trigger executes build_daily_rollup_mark()';",
                    hash="839fbf250e17ec427a430f0af8714c08dd6fbf24",
                    operation="UPDATE",
                    pgid="pgtrigger_build_daily_rollup_mark_update_f226c",
                    table="build_queue",
                    when="AFTER",
                ),
            ),
        ),
    ]
