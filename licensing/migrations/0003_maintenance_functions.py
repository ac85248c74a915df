from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("licensing", "0002_audit_trail")]

    operations = [RunSQLFile("licensing", "0003_maintenance_functions")]
