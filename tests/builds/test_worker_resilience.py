"""The worker survives a dropped database connection: pg_terminate_backend on its own backend while it reports
progress, attaches an artifact or completes never fails the build; it reconnects (one log line, no traceback)
and the build ends succeeded exactly once, or is handed back without spending a retry."""

import logging
import threading
import time

import psycopg
import pytest
from django.db import connection

from builds.models import Build, BuildArtifact, BuildEvent, BuildResult
from builds.queue import services
from builds.queue import worker as worker_module
from builds.queue.executors import Outcome
from builds.queue.worker import DatabaseUnavailable, Worker, db_retry
from tests.builds.factories import BuildFactory
from tests.conftest import wait_for
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db(transaction=True)

DIGEST = "sha256:" + "ab" * 32


def _terminate_own_backend() -> None:
    """Kill this thread's database session from another connection, as an operator or a failover would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"], autocommit=True
    ) as killer:
        killer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def _executor(kill_at: str, *, log: bool = False):
    def run(ctx):
        if log:
            ctx.log("compiling")
        if kill_at == "progress":
            _terminate_own_backend()
        assert ctx.progress(40, "compile")
        if kill_at == "attach":
            _terminate_own_backend()
        ctx.artifact(kind="sbom", uri=f"oci://sbom/{ctx.build.id}", media_type="application/spdx+json", content=b"{}")
        if kill_at == "complete":
            _terminate_own_backend()
        return Outcome(True, image_reference=f"registry.example/app:{ctx.build.id}", image_digest=DIGEST)

    return run


def _assert_succeeded_once(build) -> None:
    build.refresh_from_db()
    assert (build.status, build.retry_count) == ("succeeded", 0)
    assert BuildResult.objects.filter(build=build).values_list("status", flat=True).get() == "succeeded"
    assert BuildEvent.objects.filter(build_id=build.pk, to_status="succeeded").count() == 1
    assert BuildArtifact.objects.filter(build=build).count() == 1


def _worker_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "builds.worker" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("kill_at", "log"),
    [("progress", False), ("attach", False), ("complete", False), ("complete", True)],
    ids=["progress", "attach", "complete (pipelined)", "complete (with a log)"],
)
def test_a_terminated_backend_does_not_fail_the_build(caplog, kill_at, log):
    """The worker's connection is terminated just before it reports progress, attaches an artifact or
    completes: it reconnects, the build succeeds exactly once, and the log has one line, without a traceback."""
    caplog.set_level(logging.INFO, logger="builds.worker")
    build = BuildFactory()
    worker = Worker(executor=_executor(kill_at, log=log), max_builds=1, exit_when_idle=True, reap_interval=0)
    counts = worker.run()
    _assert_succeeded_once(build)
    assert counts["failed"] == 0
    warnings = _worker_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "terminating connection" in warnings[0].getMessage() or "closed" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records if r.name == "builds.worker")


def test_a_lost_connection_inside_the_executor_hands_the_build_back_without_spending_a_retry(caplog):
    """An executor whose own database call dies with the connection is not the build's fault: the build is
    released (queued again, retry_count unchanged, no failed result), and a second run builds it."""
    caplog.set_level(logging.INFO, logger="builds.worker")
    build = BuildFactory()

    def executor(ctx):
        _terminate_own_backend()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        raise AssertionError("unreachable")

    counts = Worker(executor=executor, max_builds=1, exit_when_idle=True, reap_interval=0).run()
    build.refresh_from_db()
    assert (build.status, build.retry_count, counts["released"], counts["failed"]) == ("queued", 0, 1, 0)
    assert not BuildResult.objects.filter(build=build, status="failed").exists()
    assert not any(r.exc_info for r in caplog.records if r.name == "builds.worker")
    Worker(executor=_executor("none"), exit_when_idle=True, reap_interval=0).run()
    _assert_succeeded_once(build)


def test_db_retry_gives_up_after_its_attempts_with_one_line_each(caplog, monkeypatch):
    """A database that stays away: one warning per attempt, then DatabaseUnavailable (never a traceback)."""
    caplog.set_level(logging.INFO, logger="builds.worker")
    monkeypatch.setattr(worker_module, "RETRY_MAX_BACKOFF", 0.01)
    calls = []

    def always_lost():
        calls.append(1)
        _terminate_own_backend()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    with pytest.raises(DatabaseUnavailable):
        db_retry(always_lost, what="a test call", attempts=3, backoff=0.01)
    assert len(calls) == 3
    assert len(_worker_warnings(caplog)) == 3
    assert not any(r.exc_info for r in caplog.records)


def test_db_retry_raises_an_error_of_the_statement_at_once():
    """A statement's own error (here a refused argument) is not a lost connection: no retry."""
    calls = []

    def refused():
        calls.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1/0")

    with pytest.raises(Exception, match="division by zero"):
        db_retry(refused, what="a test call")
    assert len(calls) == 1
    assert not Build.objects.exists()


def _terminate_other_backends() -> int:
    """Kill every other session on the test database (the worker's listener, slots and heartbeat)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return cursor.fetchone()[0]


def test_connection_churn_logs_one_line_per_drop_and_the_worker_keeps_working(caplog):
    """Every connection of an idle worker is terminated three times: each drop is at most one warning line, none
    with a traceback, and a build enqueued afterwards is still claimed at once (LISTEN re-established)."""
    caplog.set_level(logging.INFO, logger="builds.worker")
    license = LicenseFactory()
    worker = Worker(executor=_executor("none"), poll_interval=30, heartbeat_interval=0.2, reap_interval=0.2)
    thread = threading.Thread(target=lambda: (worker.run(), connection.close()))
    thread.start()
    try:
        killed = 0
        for _ in range(3):
            time.sleep(0.6)
            killed += _terminate_other_backends()
        time.sleep(1.5)  # the listener reconnects after a second
        build = services.build_enqueue(customer=license.customer, manifest={"base": "alpine"})
        assert wait_for(lambda: Build.objects.get(pk=build.pk).status == "succeeded", timeout=5)
    finally:
        worker.request_stop(immediately=True)
        thread.join(10)
    records = [r for r in caplog.records if r.name == "builds.worker"]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert killed >= 3
    assert 1 <= len(warnings) <= killed, [r.getMessage() for r in warnings]
    assert not any(r.exc_info for r in records)
