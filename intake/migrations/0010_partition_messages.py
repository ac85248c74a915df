"""Monthly range partitions for conversation_messages (issue 15), by created_at, with the functions of builds
0031 (honua.sql_migrations.ConvertToPartitions). Not atomic, for the same reason: the constraint and the unique
index on (id, created_at) are prepared while the intake keeps writing; only the swap locks the table, briefly.
After console 0002, whose full-text index the partitioned table takes over by name."""

import pgtrigger.compiler
import pgtrigger.migrations
from django.apps import apps
from django.db import migrations

from honua.sql_migrations import AtomicSeparateDatabaseAndState, ConvertToPartitions


class Migration(migrations.Migration):
    atomic = False

    # After console 0002 where the console is installed (it builds its full-text index concurrently, which a
    # partitioned table refuses); the intake alone does not need the console.
    dependencies = [
        ("intake", "0009_seed_model_prices"),
        ("builds", "0031_partitions"),
    ] + ([("console", "0002_message_search")] if apps.is_installed("console") else [])

    operations = [
        ConvertToPartitions("conversation_messages", "created_at"),
        # The counting triggers learn to tell a row moved between partitions from a new one
        # (partition_row_moving); removed and added again in one transaction, so no lookup or message goes
        # uncounted in between.
        AtomicSeparateDatabaseAndState(
            database_operations=[
                pgtrigger.migrations.RemoveTrigger(
                    model_name="conversationmessage",
                    name="update_conversation_stats",
                ),
                pgtrigger.migrations.AddTrigger(
                    model_name="conversationmessage",
                    trigger=pgtrigger.compiler.Trigger(
                        name="update_conversation_stats",
                        sql=pgtrigger.compiler.UpsertTriggerSql(
                            declare="DECLARE v_status text; v_deleted timestamptz;",
                            func="\n    IF TG_OP = 'UPDATE' THEN\n        IF NEW.conversation_id <> OLD.conversation_id THEN\n            RAISE EXCEPTION 'message % cannot move to another conversation', OLD.id USING ERRCODE = 'P0001';\n        END IF;\n        IF (NEW.prompt_tokens, NEW.completion_tokens, NEW.cost, NEW.created_at)\n           IS NOT DISTINCT FROM (OLD.prompt_tokens, OLD.completion_tokens, OLD.cost, OLD.created_at) THEN\n            RETURN NULL;\n        END IF;\n    END IF;\n\n    SELECT c.status, c.deleted_at INTO v_status, v_deleted\n    FROM conversations c WHERE c.id = COALESCE(NEW.conversation_id, OLD.conversation_id)\n    FOR NO KEY UPDATE;\n    IF NOT FOUND THEN\n        RETURN NULL;  -- the conversation itself is being deleted (cascade)\n    END IF;\n\n    IF TG_OP = 'INSERT' THEN\n        -- A message whose created_at moved it to another month's partition arrives here as a DELETE then an\n        -- INSERT (partition_row_moving): counted out and in again, but not a new message.\n        IF (v_status <> 'active' OR v_deleted IS NOT NULL) AND NOT partition_row_moving() THEN\n            RAISE EXCEPTION 'conversation % is %: messages can only be added to an active conversation',\n                NEW.conversation_id, CASE WHEN v_deleted IS NOT NULL THEN 'deleted' ELSE v_status END\n                USING ERRCODE = 'P0001';\n        END IF;\n        UPDATE conversations c SET\n            message_count = c.message_count + 1,\n            prompt_tokens = c.prompt_tokens + NEW.prompt_tokens,\n            completion_tokens = c.completion_tokens + NEW.completion_tokens,\n            total_cost = c.total_cost + NEW.cost,\n            last_message_at = GREATEST(c.last_message_at, NEW.created_at)\n        WHERE c.id = NEW.conversation_id;\n    ELSIF TG_OP = 'UPDATE' THEN\n        UPDATE conversations c SET\n            prompt_tokens = c.prompt_tokens + NEW.prompt_tokens - OLD.prompt_tokens,\n            completion_tokens = c.completion_tokens + NEW.completion_tokens - OLD.completion_tokens,\n            total_cost = c.total_cost + NEW.cost - OLD.cost,\n            last_message_at = CASE WHEN NEW.created_at IS DISTINCT FROM OLD.created_at\n                THEN (SELECT max(m.created_at) FROM conversation_messages m WHERE m.conversation_id = c.id)\n                ELSE c.last_message_at END\n        WHERE c.id = NEW.conversation_id;\n    ELSE\n        UPDATE conversations c SET\n            message_count = c.message_count - 1,\n            prompt_tokens = c.prompt_tokens - OLD.prompt_tokens,\n            completion_tokens = c.completion_tokens - OLD.completion_tokens,\n            total_cost = c.total_cost - OLD.cost,\n            last_message_at = CASE WHEN OLD.created_at >= c.last_message_at\n                THEN (SELECT max(m.created_at) FROM conversation_messages m WHERE m.conversation_id = c.id)\n                ELSE c.last_message_at END\n        WHERE c.id = OLD.conversation_id;\n    END IF;\n    RETURN NULL;\n",
                            hash="a21723039557d64a94069d776e03f4422e327585",
                            operation="INSERT OR UPDATE OR DELETE",
                            pgid="pgtrigger_update_conversation_stats_85bb1",
                            table="conversation_messages",
                            when="AFTER",
                        ),
                    ),
                ),
            ],
            state_operations=[
                pgtrigger.migrations.RemoveTrigger(
                    model_name="conversationmessage",
                    name="update_conversation_stats",
                ),
                pgtrigger.migrations.AddTrigger(
                    model_name="conversationmessage",
                    trigger=pgtrigger.compiler.Trigger(
                        name="update_conversation_stats",
                        sql=pgtrigger.compiler.UpsertTriggerSql(
                            declare="DECLARE v_status text; v_deleted timestamptz;",
                            func="\n    IF TG_OP = 'UPDATE' THEN\n        IF NEW.conversation_id <> OLD.conversation_id THEN\n            RAISE EXCEPTION 'message % cannot move to another conversation', OLD.id USING ERRCODE = 'P0001';\n        END IF;\n        IF (NEW.prompt_tokens, NEW.completion_tokens, NEW.cost, NEW.created_at)\n           IS NOT DISTINCT FROM (OLD.prompt_tokens, OLD.completion_tokens, OLD.cost, OLD.created_at) THEN\n            RETURN NULL;\n        END IF;\n    END IF;\n\n    SELECT c.status, c.deleted_at INTO v_status, v_deleted\n    FROM conversations c WHERE c.id = COALESCE(NEW.conversation_id, OLD.conversation_id)\n    FOR NO KEY UPDATE;\n    IF NOT FOUND THEN\n        RETURN NULL;  -- the conversation itself is being deleted (cascade)\n    END IF;\n\n    IF TG_OP = 'INSERT' THEN\n        -- A message whose created_at moved it to another month's partition arrives here as a DELETE then an\n        -- INSERT (partition_row_moving): counted out and in again, but not a new message.\n        IF (v_status <> 'active' OR v_deleted IS NOT NULL) AND NOT partition_row_moving() THEN\n            RAISE EXCEPTION 'conversation % is %: messages can only be added to an active conversation',\n                NEW.conversation_id, CASE WHEN v_deleted IS NOT NULL THEN 'deleted' ELSE v_status END\n                USING ERRCODE = 'P0001';\n        END IF;\n        UPDATE conversations c SET\n            message_count = c.message_count + 1,\n            prompt_tokens = c.prompt_tokens + NEW.prompt_tokens,\n            completion_tokens = c.completion_tokens + NEW.completion_tokens,\n            total_cost = c.total_cost + NEW.cost,\n            last_message_at = GREATEST(c.last_message_at, NEW.created_at)\n        WHERE c.id = NEW.conversation_id;\n    ELSIF TG_OP = 'UPDATE' THEN\n        UPDATE conversations c SET\n            prompt_tokens = c.prompt_tokens + NEW.prompt_tokens - OLD.prompt_tokens,\n            completion_tokens = c.completion_tokens + NEW.completion_tokens - OLD.completion_tokens,\n            total_cost = c.total_cost + NEW.cost - OLD.cost,\n            last_message_at = CASE WHEN NEW.created_at IS DISTINCT FROM OLD.created_at\n                THEN (SELECT max(m.created_at) FROM conversation_messages m WHERE m.conversation_id = c.id)\n                ELSE c.last_message_at END\n        WHERE c.id = NEW.conversation_id;\n    ELSE\n        UPDATE conversations c SET\n            message_count = c.message_count - 1,\n            prompt_tokens = c.prompt_tokens - OLD.prompt_tokens,\n            completion_tokens = c.completion_tokens - OLD.completion_tokens,\n            total_cost = c.total_cost - OLD.cost,\n            last_message_at = CASE WHEN OLD.created_at >= c.last_message_at\n                THEN (SELECT max(m.created_at) FROM conversation_messages m WHERE m.conversation_id = c.id)\n                ELSE c.last_message_at END\n        WHERE c.id = OLD.conversation_id;\n    END IF;\n    RETURN NULL;\n",
                            hash="a21723039557d64a94069d776e03f4422e327585",
                            operation="INSERT OR UPDATE OR DELETE",
                            pgid="pgtrigger_update_conversation_stats_85bb1",
                            table="conversation_messages",
                            when="AFTER",
                        ),
                    ),
                ),
            ],
        ),
    ]
