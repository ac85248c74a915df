from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0001_initial"),
        ("licensing", "0001_initial"),
        ("builds", "0005_maintenance"),
        ("intake", "0001_initial"),
    ]

    operations = [RunSQLFile("operations", "0002_maintenance")]
