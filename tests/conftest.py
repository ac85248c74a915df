"""Shared test helpers. Tests run against a real PostgreSQL: DATABASE_URL's server, or the embedded one."""

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.db.backends.postgresql.creation import DatabaseCreation

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def raises_db_error(match: str | None = None):
    """Expect a database error (constraint, trigger, raised exception) without breaking the test transaction."""
    with pytest.raises(DatabaseError, match=match) as info, transaction.atomic():
        yield info


@contextlib.contextmanager
def raises_sqlstate(sqlstate: str):
    """Expect a database error with that SQLSTATE (e.g. the project's ``HN204``), without breaking the test
    transaction."""
    with raises_db_error() as info:
        yield info
    assert info.value.__cause__.sqlstate == sqlstate, info.value


def sql_rows(query: str, params=()) -> list[tuple] | None:
    """Run ``query`` on the test's connection: its rows, or None when the statement returns none."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else None


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def start_worker(worker) -> threading.Thread:
    """Run a reference worker (``builds.queue.worker.Worker``) in a thread of its own, which closes its database
    connection when the worker returns; stop it with ``worker.request_stop()`` and join the thread."""

    def run() -> None:
        try:
            worker.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def run_together(*calls: Callable[[], object], timeout: float = 60.0) -> list:
    """Call each of ``calls`` in its own thread (its own database connection), all released at once by a barrier.
    Returns, in order, what each call returned or the exception it raised; every thread has closed its
    connections by then."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(i: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=timeout)
            outcomes[i] = call()
        except Exception as error:  # handed to the test, which asserts on it
            outcomes[i] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), f"a thread was still running after {timeout} s"
    return outcomes


@contextlib.contextmanager
def held_elsewhere(take: Callable[[], object], timeout: float = 10.0):
    """Run ``take`` in another thread, in a transaction on that thread's own connection, and keep the transaction
    open (with whatever locks ``take`` took) until the with block ends; then commit it and close the connection."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                take()
                taken.set()
                release.wait(timeout)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert taken.wait(timeout), "the other connection did not take its lock"
        yield
    finally:
        release.set()
        thread.join(timeout)


def raised(outcomes: list) -> list[Exception]:
    """The exceptions among ``run_together``'s outcomes."""
    return [outcome for outcome in outcomes if isinstance(outcome, Exception)]


def database_url(database: str | None = None) -> str:
    """A DATABASE_URL for the test database this test runs against (for subprocesses)."""
    from honua.scratch_db import database_url as url_of

    return url_of(connection.settings_dict, database)


def subprocess_env(env: dict | None = None) -> dict:
    """The environment for a subprocess: this one's without the test run's Django, database and pytest variables
    (the subprocess configures itself as an operator's would), plus ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "PYTEST"))}
    full_env.update(env or {})
    return full_env


def run_manage(*args: str, env: dict | None = None, cwd: Path = PROJECT_ROOT, timeout: int = 120):
    """Run ``manage.py`` in a subprocess, as an operator would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_manage(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``manage.py`` in a subprocess (output piped, as text) and return at once; the caller waits for it."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=subprocess_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Django's cache is per process and outlives a test: the dashboard keeps its panels in it for a minute, so a
    test that renders the dashboard (the console's, the intake's price panel) would read panels an earlier test in
    the same worker left. Each test starts with it empty."""
    from django.core.cache import cache

    cache.clear()


@contextlib.contextmanager
def nested_plans(*, buffers: bool = False):
    """Collect the plan of every statement run inside, nested ones (in PL/pgSQL functions) included; with
    ``buffers``, as executed, with the buffers each read (``buffers_of``), which do not depend on timing."""
    plans: list[str] = []
    raw = connection.connection

    def keep(diagnostic):
        if "Query Text:" in (diagnostic.message_primary or ""):
            plans.append(diagnostic.message_primary)

    raw.add_notice_handler(keep)
    settings = {
        "auto_explain.log_min_duration": "0",
        "auto_explain.log_nested_statements": "on",
        "auto_explain.log_level": "notice",
    }
    if buffers:
        settings.update(
            {"auto_explain.log_analyze": "on", "auto_explain.log_buffers": "on", "auto_explain.log_timing": "off"}
        )
    try:
        sql_rows("LOAD 'auto_explain'")
        for name, value in settings.items():
            sql_rows("SELECT set_config(%s, %s, true)", [name, value])
        yield plans
    finally:
        sql_rows("SELECT set_config('auto_explain.log_min_duration', '-1', true)")
        raw.remove_notice_handler(keep)


def buffers_of(plan: str) -> int:
    """Shared buffers (hit + read) the plan's top node reports, from ``nested_plans(buffers=True)``."""
    counts = re.search(r"Buffers: shared ([^\n]*)", plan)
    assert counts, plan
    return sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", counts.group(1)))


def plan_of(plans: list[str], fragment: str) -> str:
    """The one collected plan whose statement contains ``fragment``."""
    found = [plan for plan in plans if fragment in plan.split("Query Text:", 1)[1].split("\n  ", 1)[0]]
    assert found, f"no plan for a statement containing {fragment!r} among {len(plans)}"
    return found[0]
