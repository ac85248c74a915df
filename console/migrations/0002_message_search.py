"""Full-text search of conversation messages for the console's messages list (console/admin.py): a GIN index on
the exact expression the search uses (``SearchVector("content", config="english")``). Built concurrently, so
the messages table keeps taking writes. The console owns the index because the console is what searches."""

from django.db import migrations

INDEX = "conversation_messages_content_fts"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("console", "0001_roles"), ("intake", "0006_manifest_hash_canonical")]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON conversation_messages "
            "USING gin (to_tsvector('english'::regconfig, COALESCE(content, ''::text)))",
            f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}",
        )
    ]
