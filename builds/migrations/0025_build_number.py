from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """Human build numbers, step 1 (one short transaction): the sequence, the column and its default for new rows.
    0026 numbers the existing rows, then adds the constraints and the model state."""

    dependencies = [("builds", "0022_agent_sql_api")]

    operations = [RunSQLFile("builds", "0025_build_number")]
