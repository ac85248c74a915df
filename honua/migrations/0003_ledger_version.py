from django.db import migrations, models

from honua.sql_migrations import RunSQLFile

VERSION_HELP = "Order in which this database applied the migration (1, 2, ...): the seed's `version`"


class Migration(migrations.Migration):
    """The ledger's ``version``: existing rows numbered in the order they were applied, then required and unique."""

    dependencies = [
        ("honua", "0002_maintenance_runs"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="schemamigration",
            options={"ordering": ["version"]},
        ),
        migrations.AddField(
            model_name="schemamigration",
            name="version",
            field=models.PositiveIntegerField(null=True, help_text=VERSION_HELP),
        ),
        RunSQLFile("honua", "0003_ledger_version"),
        migrations.AlterField(
            model_name="schemamigration",
            name="version",
            field=models.PositiveIntegerField(help_text=VERSION_HELP),
        ),
        migrations.AddConstraint(
            model_name="schemamigration",
            constraint=models.UniqueConstraint(fields=("version",), name="schema_migrations_version_uniq"),
        ),
    ]
