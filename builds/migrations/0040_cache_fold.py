from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """The hourly fold of the cache access rollup reads only the rows it folds (builds/sql/0040_cache_fold.sql).

    The partial index holds only the shards' rows not folded yet (the lookups since the last fold), so building it
    reads the rollup once and holds a SHARE lock meanwhile (lookups that add a new shard row wait, others do not).
    """

    dependencies = [
        ("builds", "0039_cache_owner_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="buildcacheaccessrollup",
            index=models.Index(
                condition=models.Q(("shard__gte", 0)), fields=["shard"], name="build_cache_access_delta_idx"
            ),
        ),
        RunSQLFile("builds", "0040_cache_fold"),
    ]
