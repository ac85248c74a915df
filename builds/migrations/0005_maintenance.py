from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    # TODO(maintenance): depend on ("builds", "0004_queue") once the queue branch is merged.
    dependencies = [("builds", "0002_quota_usage")]

    operations = [RunSQLFile("builds", "0005_maintenance")]
