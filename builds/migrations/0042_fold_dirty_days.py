from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """The hourly fold of the build rollups folds only the days that are dirty or newly closed, and the dashboard's
    and build_performance_summary's reads of the rollups use indexes (builds/sql/0042_fold_dirty_days.sql).

    The three indexes are built in the migration's transaction (build_cache_registry: 100,000 rows at ten times the
    seed, about 0.2 s under a SHARE lock; the activity rollups' partial indexes hold only the every-customer rows).
    """

    dependencies = [
        ("builds", "0041_cache_month_rollup"),
    ]

    operations = [
        RunSQLFile("builds", "0042_fold_dirty_days"),
    ]
