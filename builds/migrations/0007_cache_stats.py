from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("builds", "0006_cache_hit_counters")]

    operations = [RunSQLFile("builds", "0007_cache_stats")]
