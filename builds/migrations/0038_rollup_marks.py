import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """The daily rollups' mark triggers fire only for rows that can touch a folded day
    (builds/sql/0038_rollup_marks.sql): not on a claim, nor on a completion of today."""

    dependencies = [
        ("builds", "0036_usage_view"),
    ]

    operations = [
        RunSQLFile("builds", "0038_rollup_marks"),
        pgtrigger.migrations.RemoveTrigger(
            model_name="build",
            name="build_daily_rollup_mark_insert",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="build",
            name="build_daily_rollup_mark_update",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="build",
            name="build_daily_rollup_mark_delete",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="buildresult",
            name="build_results_rollup_mark_insert",
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="build",
            trigger=pgtrigger.compiler.Trigger(
                name="build_daily_rollup_mark_insert",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (NEW.finished_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') OR (NEW.cache_hit AND NEW.created_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')))",
                    execute="build_daily_rollup_mark()",
                    func="RAISE EXCEPTION 'unused: the trigger executes build_daily_rollup_mark()';",
                    hash="120c1dd45828c1c23156c235e31fcb461b14a75c",
                    operation="INSERT",
                    pgid="pgtrigger_build_daily_rollup_mark_insert_897f1",
                    table="build_queue",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="build",
            trigger=pgtrigger.compiler.Trigger(
                name="build_daily_rollup_mark_update",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (((OLD.\"cache_hit\" IS DISTINCT FROM (NEW.\"cache_hit\") OR OLD.\"created_at\" IS DISTINCT FROM (NEW.\"created_at\") OR OLD.\"customer_id\" IS DISTINCT FROM (NEW.\"customer_id\") OR OLD.\"finished_at\" IS DISTINCT FROM (NEW.\"finished_at\") OR OLD.\"started_at\" IS DISTINCT FROM (NEW.\"started_at\") OR OLD.\"status\" IS DISTINCT FROM (NEW.\"status\"))) AND (OLD.finished_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') OR (OLD.cache_hit AND OLD.created_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')) OR NEW.finished_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') OR (NEW.cache_hit AND NEW.created_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'))))",
                    execute="build_daily_rollup_mark()",
                    func="RAISE EXCEPTION 'unused: the trigger executes build_daily_rollup_mark()';",
                    hash="bac2ea38cb8e5d4ff234fcdde332dcd4e5caa627",
                    operation="UPDATE",
                    pgid="pgtrigger_build_daily_rollup_mark_update_f226c",
                    table="build_queue",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="build",
            trigger=pgtrigger.compiler.Trigger(
                name="build_daily_rollup_mark_delete",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (OLD.finished_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') OR (OLD.cache_hit AND OLD.created_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')))",
                    execute="build_daily_rollup_mark()",
                    func="RAISE EXCEPTION 'unused: the trigger executes build_daily_rollup_mark()';",
                    hash="f1a3752fc522b8b551fd19420716a663608c6675",
                    operation="DELETE",
                    pgid="pgtrigger_build_daily_rollup_mark_delete_b3a60",
                    table="build_queue",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="buildresult",
            trigger=pgtrigger.compiler.Trigger(
                name="build_results_rollup_mark_insert_row",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (NEW.created_at < (date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'))",
                    execute="build_results_rollup_mark_row()",
                    func="RAISE EXCEPTION 'unused: the trigger executes build_results_rollup_mark_row()';",
                    hash="659a06f8b71bcc2d62062b5b5a017fdee7476aee",
                    operation="INSERT",
                    pgid="pgtrigger_build_results_rollup_mark_insert_row_1c880",
                    table="build_results",
                    when="AFTER",
                ),
            ),
        ),
    ]
