"""Human build numbers, step 2, and the index of build errors' text. Step 2: number the existing builds in bounded batches, then the unique index (built
concurrently), NOT NULL, and the model state.

Not atomic, so each batch commits on its own: a live table is never locked for the whole backfill, and new builds
(numbered by the default since 0025) keep arriving meanwhile."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.expressions
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models, transaction

from honua.sql_migrations import RunSQLFile

BATCH = 10_000

NUMBER_BATCH_SQL = """
UPDATE build_queue b SET build_number = s.n
FROM (SELECT id, %(base)s + row_number() OVER (ORDER BY id) AS n
      FROM (SELECT id FROM build_queue WHERE build_number IS NULL AND id > %(after)s ORDER BY id LIMIT %(batch)s) i
     ) s
WHERE b.id = s.id
RETURNING b.id
"""


def number_existing_builds(apps, schema_editor):
    """Number the builds older than the column 1..n in id order (UUIDv7: time order), one committed batch at a
    time. 0025 started the sequence after n, so numbers never collide. The backfill is not an update anyone
    made, so the ``updated_at`` trigger is skipped (django-pgtrigger's ``pgtrigger.ignore`` switch)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'build_queue'::regclass AND tgname LIKE %s",
            ["pgtrigger_update_updated_at_column_%"],
        )
        ignored = "{" + ",".join(name for (name,) in cursor.fetchall()) + "}"
    base, after = 0, "00000000-0000-0000-0000-000000000000"
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [ignored])
            cursor.execute(NUMBER_BATCH_SQL, {"base": base, "after": after, "batch": BATCH})
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return
        base += len(ids)
        after = max(ids)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("builds", "0025_build_number")]

    operations = [
        migrations.RunPython(number_existing_builds, migrations.RunPython.noop),
        migrations.RunSQL(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS build_queue_build_number_key ON build_queue (build_number)",
            "DROP INDEX CONCURRENTLY IF EXISTS build_queue_build_number_key",
        ),
        RunSQLFile("builds", "0026_build_number_backfill"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="build",
                    name="build_number",
                    field=models.BigIntegerField(
                        db_default=django.db.models.expressions.Func(
                            models.Value("build_queue_build_number_seq"), function="nextval"
                        ),
                        editable=False,
                        unique=True,
                    ),
                ),
            ]
        ),
        # Build search by error text (builds.selectors.builds_search), built without blocking writes.
        AddIndexConcurrently(
            model_name="build",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.search.SearchVector("error_message", config="simple"),
                condition=models.Q(("error_message__isnull", False)),
                name="build_queue_error_fts",
            ),
        ),
    ]
