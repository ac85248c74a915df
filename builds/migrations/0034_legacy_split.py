"""Splitting the conversion's ``<table>_legacy`` partitions into monthly partitions, so that retention by drop
covers the old history too (builds/sql/0034_legacy_split.sql; run daily by ``split_legacy_partitions``)."""

from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [
        ("builds", "0033_dashboard_rollup"),
    ]

    operations = [RunSQLFile("builds", "0034_legacy_split")]
