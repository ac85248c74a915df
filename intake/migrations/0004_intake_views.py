from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("intake", "0003_expire_old_conversations")]

    operations = [RunSQLFile("intake", "0004_intake_views")]
