from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("builds", "0004_queue")]

    operations = [RunSQLFile("builds", "0005_maintenance")]
