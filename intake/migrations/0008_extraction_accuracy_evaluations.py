from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("intake", "0007_prices_actions_evaluations")]

    operations = [RunSQLFile("intake", "0008_extraction_accuracy_evaluations")]
