from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """Cheaper writes on build_queue: a time-ordered primary key, no index on heartbeat_at (heartbeats become HOT
    updates), the status index limited to finished builds (claims no longer write it), and a fillfactor."""

    dependencies = [("builds", "0009_merge_maintenance")]

    operations = [
        RunSQLFile("builds", "0010_queue_perf"),
        migrations.RemoveIndex(model_name="build", name="build_queue_running_hb_idx"),
        migrations.RemoveIndex(model_name="build", name="build_queue_status_idx"),
        migrations.AlterField(
            model_name="build",
            name="id",
            field=models.UUIDField(
                db_default=models.Func(function="build_uuid_v7"), editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.AddIndex(
            model_name="build",
            index=models.Index(
                condition=models.Q(("status__in", ["succeeded", "failed", "cancelled", "timed_out"])),
                fields=["status", "-created_at"],
                name="build_queue_finished_idx",
            ),
        ),
    ]
