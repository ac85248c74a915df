from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """The claim picks its license from an index in its own order (builds/sql/0045_claim_index.sql).

    It scanned and sorted the whole of ``build_license_state``: every license, and every page of dead row versions
    that pruning and autovacuum had not yet removed (2,902 buffers per claim after the queue benchmark's pgbench
    rounds, 90.6 on a fresh database). Two stored generated columns, ``claimable`` and ``urgent``, and a partial
    index on them in the claim's order let a pick read the first unlocked entry; a probe of the license's queued
    builds passes over licenses whose builds all wait for their retry backoff, which stayed first in the order and
    made every claim pick again (7.9 picks per claim at ten times the seed). The columns rewrite the table (one row
    per license) under an ACCESS EXCLUSIVE lock, which also compacts a bloated one.
    """

    dependencies = [
        ("builds", "0044_completion_cost"),
    ]

    operations = [
        # The columns take the table's ACCESS EXCLUSIVE lock: wait for busy claims at most this long, then fail.
        migrations.RunSQL("SET LOCAL lock_timeout = '5s'", reverse_sql="SET LOCAL lock_timeout = '5s'"),
        migrations.AddField(
            model_name="buildlicensestate",
            name="claimable",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Q(("paused", False), ("queued__gt", 0), ("running__lt", models.F("max_running"))),
                help_text="Queued work, not paused, below the copy of its cap: the rows the claim's index holds.",
                output_field=models.BooleanField(),
            ),
        ),
        migrations.AddField(
            model_name="buildlicensestate",
            name="urgent",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Q(("urgent_queued__gt", 0)),
                help_text="Urgent work queued (priority 9-10): claimed ahead of the fair order.",
                output_field=models.BooleanField(),
            ),
        ),
        migrations.AddIndex(
            model_name="buildlicensestate",
            index=models.Index(
                condition=models.Q(("claimable", True)),
                fields=["-urgent", "vtime", "license"],
                name="build_license_state_claim_idx",
            ),
        ),
        RunSQLFile("builds", "0045_claim_index"),
    ]
