from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("builds", "0006_cache_hit_counters")]

    operations = [
        RunSQLFile("builds", "0007_cache_stats"),
        migrations.CreateModel(
            name="CacheStatistics",
            fields=[
                (
                    "id",
                    models.TextField(help_text="The customer's id, or 'overall'.", primary_key=True, serialize=False),
                ),
                ("scope", models.CharField(max_length=16)),
                ("customer_name", models.CharField(max_length=200, null=True)),
                ("lookups", models.BigIntegerField()),
                ("hits", models.BigIntegerField()),
                ("misses", models.BigIntegerField()),
                ("hit_rate", models.DecimalField(decimal_places=20, max_digits=30)),
                ("entries", models.BigIntegerField()),
                ("shared_entries", models.BigIntegerField()),
                ("bytes_stored", models.BigIntegerField()),
                ("time_saved_ms", models.BigIntegerField()),
                ("time_saved", models.DurationField()),
            ],
            options={
                "verbose_name_plural": "cache statistics",
                "db_table": "cache_statistics",
                "ordering": ["scope", "-hits"],
                "managed": False,
            },
        ),
    ]
