"""The queue under real concurrency: many connections in threads claiming, completing and enqueuing at once."""

import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connection

from builds.models import Build, BuildEvent, BuildResult
from builds.queue import services
from tests.licensing.factories import LicenseFactory

DIGEST = "sha256:" + "d" * 64


def _in_thread(target, results, errors):
    def run(*args):
        try:
            results.append(target(*args))
        except Exception as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    return run


def _queue_builds(licenses, per_license):
    """per_license queued builds for each license, inserted in one statement, priorities 1..10 mixed."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO build_queue (customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit,
                                     progress, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds,
                                     cancel_requested, source, created_at)
            SELECT l.customer_id, l.id, jsonb_build_object('n', g, 'license', l.id),
                   encode(sha256((l.id::text || g)::bytea), 'hex'), 1 + (g %% 10), 'queued', false, 0, 0, 3, 3600,
                   120, false, 'test', clock_timestamp()
            FROM licenses l CROSS JOIN generate_series(1, %s) g
            WHERE l.id = ANY(%s)
            """,
            [per_license, [license.pk for license in licenses]],
        )


@pytest.mark.django_db(transaction=True)
def test_sixteen_workers_drain_thousands_of_builds_each_claimed_once_within_limits():
    """16 connections drain 2,400 builds: none claimed twice, each ends in one terminal state with one result,
    and no license ever has more running builds than its max_concurrent_builds."""
    tiers = ["core", "pro", "enterprise", "core", "pro", "asp"] * 4
    licenses = [LicenseFactory(tier=tier) for tier in tiers]
    limits = {license.pk: license.max_concurrent_builds for license in licenses}
    _queue_builds(licenses, 100)
    total = 100 * len(licenses)
    stop = threading.Event()
    violations = []

    def watch():
        with connection.cursor() as cursor:
            while not stop.is_set():
                cursor.execute(
                    "SELECT license_id, count(*) FROM build_queue WHERE status = 'running' GROUP BY license_id"
                )
                violations.extend((lic, n) for lic, n in cursor.fetchall() if n > limits[lic])
                time.sleep(0.005)

    def drain(worker_id):
        claimed = []
        with connection.cursor() as cursor:
            idle_since = None
            while True:
                cursor.execute("SELECT id FROM get_next_build_for_worker(%s)", [worker_id])
                row = cursor.fetchone()
                if row is None:
                    cursor.execute("SELECT count(*) FROM build_queue WHERE status IN ('queued', 'running')")
                    if cursor.fetchone()[0] == 0:
                        return claimed
                    idle_since = idle_since or time.monotonic()
                    assert time.monotonic() - idle_since < 30, "queue stalled"
                    time.sleep(0.001)
                    continue
                idle_since = None
                build_id = row[0]
                claimed.append(build_id)
                succeeded = len(claimed) % 3 != 0
                cursor.execute(
                    "SELECT complete_build(%s, %s, %s, %s, %s, %s)",
                    [build_id, worker_id, succeeded, "registry.example/app:1", DIGEST, None if succeeded else "boom"],
                )
                assert cursor.fetchone()[0] is True

    results, errors = [], []
    watcher = threading.Thread(target=_in_thread(watch, [], errors))
    watcher.start()
    workers = [threading.Thread(target=_in_thread(drain, results, errors), args=(f"w{i}",)) for i in range(16)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(120)
    stop.set()
    watcher.join(10)
    assert not errors, errors
    claimed = [build_id for worker_claims in results for build_id in worker_claims]
    assert len(claimed) == total
    assert len(set(claimed)) == total, "a build was claimed twice"
    assert not violations, f"max_concurrent_builds exceeded: {violations[:5]}"
    statuses = Counter(Build.objects.values_list("status", flat=True))
    assert set(statuses) <= {"succeeded", "failed"} and sum(statuses.values()) == total
    assert BuildResult.objects.count() == total
    assert BuildResult.objects.values("build_id").distinct().count() == total
    assert BuildEvent.objects.filter(event_type="claimed").count() == total


@pytest.mark.django_db(transaction=True)
def test_quota_is_exact_under_forty_concurrent_enqueues_at_the_boundary():
    """With 5 builds left in the month, 40 simultaneous enqueues of distinct manifests queue exactly 5."""
    license = LicenseFactory(tier="core", monthly_build_quota_override=10)
    for i in range(5):
        services.build_enqueue(customer=license.customer, manifest={"warm": i})
    barrier = threading.Barrier(40)

    def enqueue(i):
        barrier.wait(30)
        try:
            return services.build_enqueue(customer=license.customer, manifest={"n": i, "id": uuid.uuid4().hex}).pk
        except services.QuotaExceeded:
            return "quota"

    results, errors = [], []
    threads = [threading.Thread(target=_in_thread(enqueue, results, errors), args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert Counter(r == "quota" for r in results) == {True: 35, False: 5}
    assert Build.objects.filter(license=license).count() == 10


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueues_of_one_manifest_make_one_build():
    """20 simultaneous enqueues of the same manifest for one customer all return the same single build."""
    license = LicenseFactory(tier="pro")
    barrier = threading.Barrier(20)

    def enqueue():
        barrier.wait(30)
        return services.build_enqueue(customer=license.customer, manifest={"base": "alpine", "run": ["x"]}).pk

    results, errors = [], []
    threads = [threading.Thread(target=_in_thread(enqueue, results, errors)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(set(results)) == 1 and len(results) == 20
    assert Build.objects.filter(license=license).count() == 1
