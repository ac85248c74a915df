"""The hot path's by-id statements read a running build by its primary key, never by a scan of the running-builds
index (builds/sql/0030_running_index.sql).

Running builds are few next to the history, so the planner prices a full scan of a partial index on them below a
primary-key probe whenever a statement implies the index's predicate, and then visits every dead entry left since
the last vacuum (938 buffers per completion on the benchmark's queue). The plans are read with auto_explain, sent
to this connection as notices.
"""

import pytest
from django.db import connection

from builds.models import Build
from tests.builds.test_scheduler import DIGEST, REF, _claim, _enqueue, _license
from tests.conftest import nested_plans, plan_of, sql_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_builds():
    """A queue where running builds look rare: 5,000 finished builds, 60 more claimed and completed (their running
    index entries now dead), statistics taken, then five claimed. Returns the running builds' ids."""
    license_ = _license("enterprise")
    sql_rows(  # a history, so that running builds are as rare as they are in production
        """
        INSERT INTO build_queue (customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit,
                                 progress, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds,
                                 cancel_requested, source, worker_id, created_at, started_at, finished_at,
                                 image_reference, image_digest)
        SELECT %s, %s, jsonb_build_object('n', i), encode(sha256(convert_to(i::text, 'UTF8')), 'hex'), 5,
               'succeeded', false, 100, 0, 3, 3600, 120, false, 'history', 'old', now() - interval '1 hour',
               now() - interval '50 minutes', now() - interval '40 minutes', %s, %s
        FROM generate_series(1, 5000) i
        """,
        [license_.customer_id, license_.pk, REF, DIGEST],
    )
    _enqueue(license_.customer, 70)
    for _ in range(60):
        build_id = _claim()[0]
        sql_rows("SELECT complete_build(%s, 'w', true, %s, %s, NULL)", [build_id, REF, DIGEST])
    sql_rows("ANALYZE build_queue")  # taken when nothing ran, as autovacuum's often is: running builds look absent
    running = [_claim()[0] for _ in range(5)]
    assert Build.objects.filter(status="running").count() == 5
    return running


def _uses_primary_key(plan: str) -> None:
    assert "build_queue_pkey" in plan, plan
    assert "build_queue_running" not in plan, plan


def test_completion_updates_the_build_through_its_primary_key(running_builds):
    with nested_plans() as plans:
        sql_rows("SELECT complete_build_v2(%s, 'w', 'succeeded', %s, %s)", [running_builds[0], REF, DIGEST])
    _uses_primary_key(plan_of(plans, "UPDATE build_queue b"))
    assert Build.objects.get(pk=running_builds[0]).status == "succeeded"


def test_heartbeat_and_release_lock_the_build_through_its_primary_key(running_builds):
    with nested_plans() as plans:
        assert sql_rows("SELECT update_build_progress(%s, 'w', 40, 'compile')", [running_builds[1]])[0][0] is True
    _uses_primary_key(plan_of(plans, "FROM build_queue b"))
    with nested_plans() as plans:
        assert sql_rows("SELECT release_build(%s, 'w')", [running_builds[2]])[0][0] is True
    _uses_primary_key(plan_of(plans, "UPDATE build_queue b"))


def test_the_rescue_and_the_operators_worker_list_still_scan_running_builds_by_their_index(running_builds):
    """The other side of the trade: the scans of running builds state the predicate in full, so they keep an index
    (not a scan of the whole history) however many builds have finished."""
    with nested_plans() as plans:
        sql_rows("SELECT handle_build_timeouts()")
    assert "build_queue_running_idx" in plan_of(plans, "WITH stale AS"), plans
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a 65-row table: ask only whether the index applies
        for query in (
            "SELECT count(*) FROM build_queue WHERE status = 'running' AND started_at IS NOT NULL",
            "SELECT running_builds FROM customer_build_usage",
        ):
            cursor.execute("EXPLAIN " + query)
            assert "build_queue_running_idx" in "\n".join(row[0] for row in cursor.fetchall()), query
