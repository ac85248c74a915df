from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """build_performance_summary grouped in index order (issue 7: views under 100 ms at six-month volume)."""

    dependencies = [("builds", "0011_queue_fk_indexes")]

    operations = [RunSQLFile("builds", "0012_views_perf")]
