from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """The running-builds index no longer answers by-id statements (builds/sql/0030_running_index.sql).

    ``build_queue_running_lic_idx`` (license WHERE status = 'running') was implied by every hot by-id statement
    (``complete_build``, ``update_build_progress``, ``release_build``: "id = $1 AND status = 'running'"). The planner,
    believing running builds few, chose a full scan of it over the primary key, and so visited every dead entry
    left since the last vacuum: 938 buffers per completion on the benchmark's queue, against 89 by the primary key.
    Its replacement adds ``started_at IS NOT NULL`` to the predicate (true of every running build), which those
    statements do not imply; the scans of running builds (the rescue, the worker list, customer_build_usage) say it.
    The new index is built before the old one is dropped, so the rescue always has one; building it holds a SHARE
    lock on build_queue for one scan of the table (writes wait, reads do not).
    """

    dependencies = [
        ("builds", "0029_claim_pauses"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="build",
            index=models.Index(
                condition=models.Q(("started_at__isnull", False), ("status", "running")),
                fields=["license"],
                name="build_queue_running_idx",
            ),
        ),
        migrations.RemoveIndex(
            model_name="build",
            name="build_queue_running_lic_idx",
        ),
        RunSQLFile("builds", "0030_running_index"),
    ]
