"""Shared test helpers. Tests run against a real PostgreSQL: DATABASE_URL's server, or the embedded one."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction

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


@pytest.fixture(scope="session", autouse=True)
def _no_session_left_on_the_test_database(django_db_setup, django_db_blocker):
    """At the end of the session, before the test database is dropped: end any other session still connected to
    it (a connection some test's thread or subprocess left open under load), naming it on stderr, so the drop
    does not fail with "being accessed by other users" after every test passed."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, backend_type, state, left(query, 120) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        left_open = cursor.fetchall()
        for pid, *_rest in left_open:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    if left_open:
        sys.stderr.write(f"\nsessions left on the test database at the end, terminated: {left_open}\n")
