"""The `slot` wake-up is sent only while an agent waits for one (build_wait / build_wait_end,
builds/sql/0043_slot_waiters.sql), and the reference worker registers while a slot of its waits."""

import json
import time

import psycopg
import pytest

from builds.models import Build
from builds.queue import services
from builds.queue.executors import SimulatedExecutor
from builds.queue.worker import WAIT_LINGER, Worker
from tests.conftest import database_url, raises_sqlstate, sql_rows, start_worker, wait_for
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_waiters():
    """build_waiters has no model, so the test database's flush between tests leaves its rows."""
    sql_rows("DELETE FROM build_waiters")
    yield
    sql_rows("DELETE FROM build_waiters")


def _core_with_queued(count):
    """A core license (one build at a time) and `count` queued builds of its customer, oldest first."""
    license = LicenseFactory(tier="core")
    builds = [
        services.build_enqueue(customer=license.customer, manifest={"base": "alpine", "n": n}) for n in range(count)
    ]
    return license, [b.pk for b in builds]


def _claim_and_complete(worker):
    (build_id,) = sql_rows("SELECT id FROM claim_builds(%s, 1)", [worker])[0]
    sql_rows("SELECT complete_build(%s, %s, false, NULL, NULL, 'x')", [build_id, worker])


def _slot_events(listener):
    events = [json.loads(n.payload) for n in listener.notifies(timeout=0.5)]
    return [e for e in events if e["event"] == "slot"]


def _waiters():
    return [row[0] for row in sql_rows("SELECT waiter FROM build_waiters ORDER BY 1")]


def test_a_freed_slot_is_announced_only_while_an_agent_waits():
    """Completing a capped license's build with others waiting notifies `slot` only while a registration younger
    than a minute exists: not before build_wait, not after build_wait_end, not for a lapsed registration."""
    license, _ = _core_with_queued(5)
    slot = {"event": "slot", "license": str(license.pk)}
    with psycopg.connect(database_url(), autocommit=True) as listener:
        listener.execute("LISTEN build_queue")
        list(listener.notifies(timeout=0.1))

        _claim_and_complete("a")  # nobody waits
        assert _slot_events(listener) == []

        sql_rows("SELECT build_wait('agent-1')")
        _claim_and_complete("a")
        assert _slot_events(listener) == [slot]

        sql_rows("UPDATE build_waiters SET since = now() - interval '61 seconds'")  # not renewed: lapsed
        _claim_and_complete("a")
        assert _slot_events(listener) == []

        sql_rows("SELECT build_wait('agent-1')")  # renewed
        sql_rows("SELECT build_wait_end('agent-1')")
        _claim_and_complete("a")
        assert _slot_events(listener) == []
    assert _waiters() == []


def test_build_wait_refuses_a_bad_waiter_id_and_changes_nothing():
    sql_rows("SELECT build_wait('kept')")
    for bad in ("", "   ", None, "x" * 201):
        with raises_sqlstate("HN001"):
            sql_rows("SELECT build_wait(%s)", [bad])
    assert _waiters() == ["kept"]
    sql_rows("SELECT build_wait_end('never registered')")  # ending twice, or never, is no error
    assert _waiters() == ["kept"]


def test_build_wait_forgets_agents_that_died():
    """A registration not renewed for an hour is deleted by the next build_wait; a recent one is kept."""
    sql_rows("SELECT build_wait('dead'), build_wait('alive')")
    sql_rows("UPDATE build_waiters SET since = now() - interval '2 hours' WHERE waiter = 'dead'")
    sql_rows("UPDATE build_waiters SET since = now() - interval '59 minutes' WHERE waiter = 'alive'")
    sql_rows("SELECT build_wait('new')")
    assert _waiters() == ["alive", "new"]


def test_an_idle_worker_is_woken_by_a_freed_slot_not_by_polling():
    """A worker idle because the only license with work is at its cap registers, and claims the next build within
    a second of another agent finishing the capped one (its poll is 30 s)."""
    _license, (first, second) = _core_with_queued(2)
    assert sql_rows("SELECT id FROM claim_builds('other-agent', 1)") == [(first,)]
    worker = Worker(executor=SimulatedExecutor(noop=True), poll_interval=30, reap_interval=0)
    thread = start_worker(worker)
    try:
        assert wait_for(lambda: _waiters() == [worker.worker_id], timeout=10)
        time.sleep(0.3)  # the slot is asleep on its 30 s poll
        sql_rows("SELECT complete_build(%s, 'other-agent', false, NULL, NULL, 'x')", [first])
        finished = time.monotonic()
        assert wait_for(lambda: Build.objects.get(pk=second).status == "succeeded", timeout=5)
        assert time.monotonic() - finished < 1.5
    finally:
        worker.request_stop(immediately=True)
        thread.join(10)
    assert _waiters() == []  # a stopped worker leaves no registration


def test_a_worker_with_every_slot_busy_is_not_registered():
    """The registration ends once no slot has waited for WAIT_LINGER seconds: a busy fleet's completions send no
    wake-ups."""
    license = LicenseFactory(tier="pro")
    worker = Worker(executor=SimulatedExecutor(stage_seconds=0.7), poll_interval=30, reap_interval=0)
    thread = start_worker(worker)
    try:
        assert wait_for(lambda: _waiters() == [worker.worker_id], timeout=10)  # idle: registered
        build = services.build_enqueue(customer=license.customer, manifest={"base": "alpine"})
        assert wait_for(lambda: Build.objects.get(pk=build.pk).status == "running", timeout=5)
        assert wait_for(lambda: _waiters() == [], timeout=WAIT_LINGER + 2)  # its one slot is busy
        assert Build.objects.get(pk=build.pk).status == "running"
        assert wait_for(lambda: Build.objects.get(pk=build.pk).status == "succeeded", timeout=10)
        assert wait_for(lambda: _waiters() == [worker.worker_id], timeout=5)  # idle again
    finally:
        worker.request_stop(immediately=True)
        thread.join(10)
