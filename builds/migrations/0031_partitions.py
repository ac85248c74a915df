"""Monthly range partitions (issue 15): build_events, build_metrics, build_logs and build_access_log become
partitioned by their creation time, with the functions every partitioned table shares (ensure_partitions,
partition_drain_default, partition_drop_before) and retention by drop in cleanup_old_build_logs
(builds/sql/0031_partitions.sql).

Not atomic: for each table the CHECK constraint is validated and the unique index on (id, created_at) built
concurrently, each in its own transaction while workers keep writing, before the short swap. The model state does
not change: the ORM still treats ``id`` as the primary key (ids stay unique, from one identity sequence per table);
the database's primary key is (id, <creation time>), as PostgreSQL requires of a partitioned table."""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

from honua.sql_migrations import AtomicSeparateDatabaseAndState, ConvertToPartitions, RunSQLFile


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("builds", "0030_running_index"),
    ]

    operations = [
        RunSQLFile("builds", "0031_partitions"),
        ConvertToPartitions("build_events", "created_at"),
        ConvertToPartitions("build_metrics", "recorded_at"),
        ConvertToPartitions("build_logs", "created_at"),
        ConvertToPartitions("build_access_log", "accessed_at"),
        # The counting triggers learn to tell a row moved between partitions from a new one
        # (partition_row_moving); removed and added again in one transaction, so no lookup or message goes
        # uncounted in between.
        AtomicSeparateDatabaseAndState(
            database_operations=[
                pgtrigger.migrations.RemoveTrigger(
                    model_name="buildaccesslog",
                    name="update_cache_stats",
                ),
                pgtrigger.migrations.RemoveTrigger(
                    model_name="buildaccesslog",
                    name="rollup_cache_access",
                ),
                pgtrigger.migrations.AddTrigger(
                    model_name="buildaccesslog",
                    trigger=pgtrigger.compiler.Trigger(
                        name="update_cache_stats",
                        sql=pgtrigger.compiler.UpsertTriggerSql(
                            condition='WHEN (NEW."cache_entry_id" IS NOT NULL AND NEW."hit")',
                            func="\n                    IF partition_row_moving() THEN\n                        RETURN NULL;  -- a lookup moved to another month's partition, not a new lookup\n                    END IF;\n                    INSERT INTO build_cache_hit_counters AS c (cache_entry_id, shard, hits, last_accessed_at)\n                    VALUES (NEW.cache_entry_id, pg_backend_pid() % 64, 1, NEW.accessed_at)\n                    ON CONFLICT (cache_entry_id, shard) DO UPDATE\n                        SET hits = c.hits + 1,\n                            last_accessed_at = greatest(c.last_accessed_at, EXCLUDED.last_accessed_at);\n                    RETURN NULL;\n                ",
                            hash="590491e30a0aefc6db60e917c510ad2fbbbe4236",
                            operation="INSERT",
                            pgid="pgtrigger_update_cache_stats_23f7f",
                            table="build_access_log",
                            when="AFTER",
                        ),
                    ),
                ),
                pgtrigger.migrations.AddTrigger(
                    model_name="buildaccesslog",
                    trigger=pgtrigger.compiler.Trigger(
                        name="rollup_cache_access",
                        sql=pgtrigger.compiler.UpsertTriggerSql(
                            func="\n                    IF partition_row_moving() THEN\n                        RETURN NULL;  -- a lookup moved to another month's partition, not a new lookup\n                    END IF;\n                    INSERT INTO build_cache_access_rollup AS r (customer_id, cache_entry_id, shard, hits, misses)\n                    VALUES (NEW.customer_id, NEW.cache_entry_id, pg_backend_pid() % 64,\n                            NEW.hit::int, (NOT NEW.hit)::int)\n                    ON CONFLICT (customer_id, cache_entry_id, shard) DO UPDATE\n                        SET hits = r.hits + EXCLUDED.hits, misses = r.misses + EXCLUDED.misses;\n                    RETURN NULL;\n                ",
                            hash="f9c6b88556137cb86e41f114b1da6e6d71d730b7",
                            operation="INSERT",
                            pgid="pgtrigger_rollup_cache_access_f43ba",
                            table="build_access_log",
                            when="AFTER",
                        ),
                    ),
                ),
            ],
            state_operations=[
                pgtrigger.migrations.RemoveTrigger(
                    model_name="buildaccesslog",
                    name="update_cache_stats",
                ),
                pgtrigger.migrations.RemoveTrigger(
                    model_name="buildaccesslog",
                    name="rollup_cache_access",
                ),
                pgtrigger.migrations.AddTrigger(
                    model_name="buildaccesslog",
                    trigger=pgtrigger.compiler.Trigger(
                        name="update_cache_stats",
                        sql=pgtrigger.compiler.UpsertTriggerSql(
                            condition='WHEN (NEW."cache_entry_id" IS NOT NULL AND NEW."hit")',
                            func="\n                    IF partition_row_moving() THEN\n                        RETURN NULL;  -- a lookup moved to another month's partition, not a new lookup\n                    END IF;\n                    INSERT INTO build_cache_hit_counters AS c (cache_entry_id, shard, hits, last_accessed_at)\n                    VALUES (NEW.cache_entry_id, pg_backend_pid() % 64, 1, NEW.accessed_at)\n                    ON CONFLICT (cache_entry_id, shard) DO UPDATE\n                        SET hits = c.hits + 1,\n                            last_accessed_at = greatest(c.last_accessed_at, EXCLUDED.last_accessed_at);\n                    RETURN NULL;\n                ",
                            hash="590491e30a0aefc6db60e917c510ad2fbbbe4236",
                            operation="INSERT",
                            pgid="pgtrigger_update_cache_stats_23f7f",
                            table="build_access_log",
                            when="AFTER",
                        ),
                    ),
                ),
                pgtrigger.migrations.AddTrigger(
                    model_name="buildaccesslog",
                    trigger=pgtrigger.compiler.Trigger(
                        name="rollup_cache_access",
                        sql=pgtrigger.compiler.UpsertTriggerSql(
                            func="\n                    IF partition_row_moving() THEN\n                        RETURN NULL;  -- a lookup moved to another month's partition, not a new lookup\n                    END IF;\n                    INSERT INTO build_cache_access_rollup AS r (customer_id, cache_entry_id, shard, hits, misses)\n                    VALUES (NEW.customer_id, NEW.cache_entry_id, pg_backend_pid() % 64,\n                            NEW.hit::int, (NOT NEW.hit)::int)\n                    ON CONFLICT (customer_id, cache_entry_id, shard) DO UPDATE\n                        SET hits = r.hits + EXCLUDED.hits, misses = r.misses + EXCLUDED.misses;\n                    RETURN NULL;\n                ",
                            hash="f9c6b88556137cb86e41f114b1da6e6d71d730b7",
                            operation="INSERT",
                            pgid="pgtrigger_rollup_cache_access_f43ba",
                            table="build_access_log",
                            when="AFTER",
                        ),
                    ),
                ),
            ],
        ),
    ]
