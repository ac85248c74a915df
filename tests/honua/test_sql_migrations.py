"""SQL files run by migrations: each is used exactly once and has its reverse."""

from collections import Counter
from pathlib import Path

from django.apps import apps
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from honua.sql_migrations import RunSQLFile
from tests.conftest import PROJECT_ROOT


def _sql_operations():
    loader = MigrationLoader(None, ignore_no_migrations=True, load=True)
    for migration in loader.disk_migrations.values():
        for operation in migration.operations:
            if isinstance(operation, RunSQLFile):
                yield migration, operation


def test_every_sql_file_is_used_by_exactly_one_migration():
    """Each forward SQL file in an app's sql/ folder is run by exactly one migration, and none is missing."""
    on_disk = {
        path.resolve()
        for config in apps.get_app_configs()
        if Path(config.path).resolve().is_relative_to(PROJECT_ROOT)
        for path in (Path(config.path) / "sql").glob("*.sql")
        if not path.name.endswith(".reverse.sql")
    }
    used = Counter(operation.paths()[0].resolve() for _, operation in _sql_operations())
    assert set(used) == on_disk
    assert [path for path, count in used.items() if count != 1] == []


def test_every_sql_file_has_a_reverse():
    """Every SQL migration can be reversed: its .reverse.sql exists and is not empty."""
    for _, operation in _sql_operations():
        forward, reverse = operation.paths()
        assert reverse.exists(), f"{forward} has no {reverse.name}"
        assert reverse.read_text().strip(), f"{reverse} is empty"


def test_sql_file_operation_sets_a_lock_timeout():
    """RunSQLFile bounds how long its DDL waits for locks, so a busy table is not blocked behind it."""
    for _, operation in _sql_operations():
        assert operation.sql.startswith("SET LOCAL lock_timeout")
        assert operation.reverse_sql.startswith("SET LOCAL lock_timeout")


def test_database_needs_no_extensions(django_db_setup, django_db_blocker):
    """The schema uses no PostgreSQL extension (the embedded server ships none), only plpgsql."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension ORDER BY 1")
        assert [row[0] for row in cursor.fetchall()] == ["plpgsql"]
