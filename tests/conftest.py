"""Shared test helpers. Tests run against a real PostgreSQL: DATABASE_URL's server, or the embedded one."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.backends.postgresql.creation import DatabaseCreation

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def raises_db_error(match: str | None = None):
    """Expect a database error (constraint, trigger, raised exception) without breaking the test transaction."""
    with pytest.raises(DatabaseError, match=match) as info, transaction.atomic():
        yield info


def database_url(database: str | None = None) -> str:
    """A DATABASE_URL for the test database this test runs against (for subprocesses)."""
    from honua.scratch_db import database_url as url_of

    return url_of(connection.settings_dict, database)


def run_manage(*args: str, env: dict | None = None, cwd: Path = PROJECT_ROOT, timeout: int = 120):
    """Run ``manage.py`` in a subprocess, as an operator would; returns the CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "PYTEST"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def db_url(db) -> str:
    """DATABASE_URL of the test database (committed data is visible to subprocesses)."""
    connection.ensure_connection()
    return database_url()


def _drop_test_database_with_force(self, test_database_name, verbosity):
    """Drop a test database even if a session is still connected to it (PostgreSQL 13+ ``WITH (FORCE)``).

    Under load a full run has ended, every test passed, with the drop refused ("being accessed by other users"):
    some test's thread or subprocess had not closed its connection yet. The tests' result is what CI reports."""
    with self._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE {self.connection.ops.quote_name(test_database_name)} WITH (FORCE)")


DatabaseCreation._destroy_test_db = _drop_test_database_with_force
