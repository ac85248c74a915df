from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """customer_build_usage reads counters and the current month only (builds/sql/0036_usage_view.sql).

    The quota comes from an inlinable SQL function instead of one PL/pgSQL call per license, and the month's cache
    hits from a partial index of cache-hit builds. Building the index holds a SHARE lock on build_queue for one
    scan of the table (writes wait, reads do not); cache-hit builds are a minority, so the index is small.
    """

    dependencies = [
        ("builds", "0035_dashboard_rollups"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="build",
            index=models.Index(
                condition=models.Q(("cache_hit", True)),
                fields=["license", "created_at"],
                name="build_queue_cache_hit_idx",
            ),
        ),
        RunSQLFile("builds", "0036_usage_view"),
    ]
