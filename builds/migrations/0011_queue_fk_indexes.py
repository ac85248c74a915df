import django.db.models.deletion
from django.db import migrations, models

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """Drop the redundant single-column foreign-key indexes of build_queue and build_results (every claim and
    completion wrote them).

    The SQL file drops the indexes; the model state says db_index=False without touching the database (Django's
    own AlterField would also drop and re-validate the foreign keys, a scan of the whole table under lock)."""

    dependencies = [("builds", "0010_queue_perf"), ("licensing", "0005_audit_deletes")]

    operations = [
        RunSQLFile("builds", "0011_queue_fk_indexes"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="build",
                    name="cache_entry",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="served_builds",
                        to="builds.buildcacheentry",
                    ),
                ),
                migrations.AlterField(
                    model_name="build",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="builds",
                        to="licensing.customer",
                    ),
                ),
                migrations.AlterField(
                    model_name="build",
                    name="license",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="builds",
                        to="licensing.license",
                    ),
                ),
                migrations.AlterField(
                    model_name="buildresult",
                    name="build",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="results",
                        to="builds.build",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="build",
            index=models.Index(
                condition=models.Q(("cache_entry__isnull", False)),
                fields=["cache_entry"],
                name="build_queue_cache_entry_idx",
            ),
        ),
    ]
