from django.db import migrations, models


class Migration(migrations.Migration):
    """Time-ordered ids for new cache entries (build_uuid_v7, as build_queue's since builds.0010_queue_perf).

    Every completion that registers an image inserts a registry entry. With gen_random_uuid() its key landed on a
    random leaf of the primary key and of build_cache_registry_duration_idx (id INCLUDE build_duration_ms), and after
    each checkpoint most of those inserts wrote a full-page image: at 16 connections the claim + complete cycle waits
    on WAL flushes, and these two indexes were about a sixth of its WAL. Existing entries keep their ids; only the
    default changes (no rewrite, a moment's ACCESS EXCLUSIVE lock).
    """

    dependencies = [
        ("builds", "0046_cache_statistics_per_customer"),
    ]

    operations = [
        migrations.AlterField(
            model_name="buildcacheentry",
            name="id",
            field=models.UUIDField(
                db_default=models.Func(function="build_uuid_v7"), editable=False, primary_key=True, serialize=False
            ),
        ),
    ]
