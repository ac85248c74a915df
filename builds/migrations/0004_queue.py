from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("builds", "0003_cache")]

    operations = [RunSQLFile("builds", "0004_queue")]
