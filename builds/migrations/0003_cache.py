from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("builds", "0002_quota_usage")]

    operations = [RunSQLFile("builds", "0003_cache")]
