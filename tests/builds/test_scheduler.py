"""Scheduler v2 (builds/sql/0016_scheduler.sql): weighted fair share, the urgent lane, sub-customers pooled under
their parent's license, the quota counter, the batch claim and the lifecycle functions, on the real database."""

import collections
import functools
import json
import threading
import time

import psycopg
import pytest
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from builds.models import Build, BuildCacheEntry, BuildLicenseState, BuildResult
from builds.queue import services
from licensing.models import License
from tests.conftest import database_url, raises_sqlstate, run_together, sql_rows
from tests.licensing.factories import CustomerFactory, LicenseFactory

DIGEST = "sha256:" + "c" * 64
REF = "registry.example/team/app:1"

pytestmark = pytest.mark.django_db


def _license(tier, **overrides):
    overrides.setdefault("monthly_build_quota_override", 100_000)
    return LicenseFactory(tier=tier, **overrides)


def _enqueue(customer, count, priority=5, tag="b"):
    """count builds of distinct manifests for customer, in one statement; returns their ids in FIFO order."""
    rows = sql_rows(
        "SELECT enqueue_build(%s, jsonb_build_object('tag', %s::text, 'n', g), %s) FROM generate_series(1, %s) g",
        [customer.pk, tag, priority, count],
    )
    return [row[0] for row in rows]


def _claim(worker="w"):
    rows = sql_rows("SELECT id, license_id, customer_id, priority FROM get_next_build_for_worker(%s)", [worker])
    return rows[0] if rows else None


def _complete(build_id, worker="w"):
    return sql_rows("SELECT complete_build(%s, %s, true, %s, %s, NULL)", [build_id, worker, REF, DIGEST])[0][0]


def _drain(claims, slots=8):
    """Claim until `slots` run, complete the oldest, repeat: the license of each of `claims` claims, in order."""
    running = collections.deque()
    order = []
    while len(order) < claims:
        while len(running) < slots:
            row = _claim()
            if row is None:
                break
            running.append(row[0])
            order.append(row)
            if len(order) == claims:
                break
        if not running:
            break
        _complete(running.popleft())
    return order


def test_flood_leaves_every_other_tenant_a_claim_within_sixteen():
    """An asp flood of 2,000 builds: pro, core and enterprise builds enqueued after it are claimed within 16 claims."""
    asp, pro, core, ent = (_license(t) for t in ("asp", "pro", "core", "enterprise"))
    _enqueue(asp.customer, 2000)
    for lic in (pro, core, ent):
        _enqueue(lic.customer, 10)
    order = _drain(60)
    first = {lic.pk: next(i for i, row in enumerate(order, 1) if row[1] == lic.pk) for lic in (pro, core, ent)}
    assert max(first.values()) <= 16, first


def test_shares_of_a_thousand_claims_follow_the_weights():
    """Four tiers backlogged: each tenant's share of 1,000 consecutive claims is within 15% of its weight share."""
    licenses = {t: _license(t) for t in ("core", "pro", "enterprise", "asp")}
    for lic in licenses.values():
        _enqueue(lic.customer, 600)
    counts = collections.Counter(row[1] for row in _drain(1000))
    weights = {"core": 1, "pro": 2, "enterprise": 4, "asp": 6}
    for tier, lic in licenses.items():
        expected = 1000 * weights[tier] / sum(weights.values())
        assert abs(counts[lic.pk] - expected) <= 0.15 * expected, (tier, counts[lic.pk], expected)


def test_weight_override_wins_over_the_tier():
    """A license's scheduling_weight_override replaces its tier's weight, like the other limits."""
    lic = _license("core", scheduling_weight_override=9)
    assert lic.__class__.objects.get(pk=lic.pk).scheduling_weight == 9
    assert _license("asp").__class__.objects.get(tier="asp").scheduling_weight == 6


def test_a_lone_tenant_gets_every_slot_up_to_its_limit():
    """Work conservation: alone, an asp tenant is claimed 32 builds (its limit), then none until one finishes."""
    lic = _license("asp")
    _enqueue(lic.customer, 40)
    claimed = [_claim() for _ in range(33)]
    assert all(claimed[:32]) and claimed[32] is None
    _complete(claimed[0][0])
    assert _claim() is not None


def test_a_tenant_at_its_limit_leaves_its_share_to_others():
    """Work conservation: when core is at its limit of 1, every other claim goes to pro until pro's limit."""
    core, pro = _license("core"), _license("pro")
    _enqueue(core.customer, 10)
    _enqueue(pro.customer, 10)
    claimed = [_claim() for _ in range(6)]
    licenses = collections.Counter(row[1] for row in claimed if row)
    assert licenses == {core.pk: 1, pro.pk: 4}
    assert claimed[5] is None


def test_within_a_tenant_priority_then_fifo():
    """One tenant's builds are claimed by its own priorities, then first in, first out."""
    lic = _license("enterprise")
    low = _enqueue(lic.customer, 2, priority=1, tag="low")
    mid = _enqueue(lic.customer, 2, priority=5, tag="mid")
    high = _enqueue(lic.customer, 2, priority=7, tag="high")
    order = [_claim()[0] for _ in range(6)]
    assert order == high + mid + low


def test_urgent_builds_are_claimed_ahead_of_the_fair_order():
    """Priority 9-10 of a priority_boost license is claimed before others' waiting builds, fairly among urgent ones."""
    flood, urgent_a, urgent_b = _license("asp"), _license("enterprise"), _license("enterprise")
    _enqueue(flood.customer, 50, tag="flood")
    for _ in range(5):
        _complete(_claim()[0])
    a = _enqueue(urgent_a.customer, 3, priority=10, tag="urgent-a")
    b = _enqueue(urgent_b.customer, 3, priority=9, tag="urgent-b")
    order = [_claim()[0] for _ in range(6)]
    assert set(order) == set(a + b)
    assert {order[0], order[1]} == {a[0], b[0]}  # fair among the urgent tenants


def test_urgent_priority_needs_the_priority_boost_entitlement():
    """A core or pro license enqueuing at 9-10 gets HN203 naming priority_boost (v1 and v2); nothing is queued."""
    pro = _license("pro")
    for query in ("SELECT enqueue_build(%s, '{\"a\": 1}', 9)", "SELECT * FROM enqueue_build_v2(%s, '{\"a\": 1}', 10)"):
        with raises_sqlstate("HN203") as info:
            sql_rows(query, [pro.customer.pk])
        assert "priority_boost" in str(info.value)
    assert not Build.objects.filter(customer=pro.customer).exists()
    with pytest.raises(services.EntitlementMissing, match="priority_boost"):
        services.build_enqueue_v2(customer=pro.customer, manifest={"a": 1}, priority=9)
    assert Build.objects.count() == 0


def test_operators_may_raise_any_build_to_ten():
    """reprioritize_build may set 10 on a build of a license without priority_boost; it then goes first."""
    core, asp = _license("core"), _license("asp")
    _enqueue(asp.customer, 5)
    (slow,) = _enqueue(core.customer, 1)
    sql_rows("SELECT reprioritize_build(%s, 10)", [slow])
    assert _claim()[0] == slow


def _family(quota=100_000, limit=None):
    parent_license = _license("asp", monthly_build_quota_override=quota, max_concurrent_builds_override=limit)
    parent = parent_license.customer
    children = [CustomerFactory(parent=parent) for _ in range(3)]
    return parent_license, parent, children


def test_a_sub_customer_enqueues_under_its_parents_license():
    """A sub-customer without a license of its own queues under its parent's license (quota counted there)."""
    parent_license, _parent, children = _family()
    (build_id,) = _enqueue(children[0], 1)
    assert Build.objects.get(pk=build_id).license_id == parent_license.pk
    assert sql_rows("SELECT used FROM get_license_quota_usage(%s)", [parent_license.pk]) == [(1,)]


def test_a_sub_customer_of_a_parent_without_a_usable_license_has_no_license():
    """The family shares the parent's usable license: once it is suspended, the sub-customer has none either
    (a parent's license cannot lose sub_customers while it has sub-customers: licensing/sql/0009_entitlements.sql)."""
    parent_license, _parent, children = _family()
    child = children[0]
    License.objects.filter(pk=parent_license.pk).update(status=License.Status.SUSPENDED)
    with raises_sqlstate("HN201"):
        sql_rows("SELECT * FROM enqueue_build_v2(%s, '{\"a\": 1}')", [child.pk])


def test_a_family_shares_its_parents_concurrency_and_takes_turns():
    """The family's builds share the parent's limit, and members alternate inside the family's share."""
    parent_license, parent, children = _family(limit=3)
    _enqueue(children[0], 20, tag="c0")
    _enqueue(children[1], 20, tag="c1")
    _enqueue(parent, 20, tag="p")
    claimed = [_claim() for _ in range(4)]
    assert claimed[3] is None
    assert {row[2] for row in claimed[:3]} == {children[0].pk, children[1].pk, parent.pk}
    assert BuildLicenseState.objects.get(license=parent_license).running == 3


@pytest.mark.django_db(transaction=True)
def test_forty_concurrent_enqueues_across_a_family_stop_exactly_at_the_quota():
    """40 enqueues racing across a parent and three sub-customers with 20 builds left: exactly 20 are queued."""
    parent_license, parent, children = _family(quota=20)
    members = [parent, *children]

    def enqueue(i):
        with connection.cursor() as cursor:
            cursor.execute("SELECT enqueue_build(%s, jsonb_build_object('n', %s))", [members[i % 4].pk, i])
        return "ok"

    outcomes = [
        "quota" if isinstance(outcome, DatabaseError) and "monthly build quota" in str(outcome) else outcome
        for outcome in run_together(*(functools.partial(enqueue, i) for i in range(40)))
    ]
    assert collections.Counter(map(str, outcomes)) == {"ok": 20, "quota": 20}, outcomes
    assert Build.objects.filter(license=parent_license).count() == 20
    assert sql_rows("SELECT used, remaining FROM get_license_quota_usage(%s)", [parent_license.pk]) == [(20, 0)]


@pytest.mark.django_db(transaction=True)
def test_sixteen_claimers_holding_their_builds_never_exceed_a_license_limit():
    """16 connections claim, hold (sleep) and complete: at no moment does a license run more than its limit."""
    licenses = [_license("pro", max_concurrent_builds_override=2) for _ in range(4)]
    for lic in licenses:
        _enqueue(lic.customer, 25)
    holding = collections.Counter()
    peak = collections.Counter()
    lock = threading.Lock()
    errors = []

    def claimer(worker):
        try:
            idle = 0
            with connection.cursor() as cursor:
                while idle < 20:
                    cursor.execute("SELECT id, license_id FROM get_next_build_for_worker(%s)", [worker])
                    row = cursor.fetchone()
                    if row is None:
                        idle += 1
                        time.sleep(0.02)
                        continue
                    idle = 0
                    with lock:
                        holding[row[1]] += 1
                        peak[row[1]] = max(peak[row[1]], holding[row[1]])
                    time.sleep(0.02)
                    with lock:
                        holding[row[1]] -= 1
                    cursor.execute("SELECT complete_build(%s, %s, true, %s, %s)", [row[0], worker, REF, DIGEST])
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert Build.objects.filter(status="succeeded").count() == 100
    assert max(peak.values()) == 2, peak


def test_claim_builds_claims_a_batch_in_the_fair_order():
    """claim_builds(worker, n) claims up to n builds in one call, interleaving tenants, within their limits."""
    core, pro = _license("core"), _license("pro")
    _enqueue(core.customer, 5)
    _enqueue(pro.customer, 5)
    rows = sql_rows("SELECT license_id, worker_id, status FROM claim_builds('batch', 10)")
    assert collections.Counter(r[0] for r in rows) == {core.pk: 1, pro.pk: 4}
    assert {(r[1], r[2]) for r in rows} == {("batch", "running")}
    assert [b.pk for b in services.builds_claim(worker_id="x", limit=3)] == []


@pytest.mark.parametrize(
    ("query", "params", "code"),
    [
        ("SELECT * FROM claim_builds(NULL, 1)", [], "HN001"),
        ("SELECT * FROM claim_builds('w', 0)", [], "HN001"),
        ("SELECT * FROM claim_builds('w', 1001)", [], "HN001"),
        ("SELECT * FROM enqueue_build_v2(NULL, '{}')", [], "HN001"),
        ("SELECT * FROM enqueue_build_v2(gen_random_uuid(), '{}')", [], "HN101"),
        ("SELECT * FROM enqueue_build_v2(%s, '[]')", ["customer"], "HN002"),
        ("SELECT * FROM enqueue_build_v2(%s, '{}', 11)", ["customer"], "HN001"),
        ("SELECT complete_build_v2(gen_random_uuid(), 'w', 'failed')", [], "HN103"),
        ("SELECT complete_build_v2(%s, 'w', 'maybe')", ["build"], "HN001"),
        ("SELECT complete_build_v2(%s, '', 'failed')", ["build"], "HN001"),
        ("SELECT complete_build_v2(%s, 'w', 'succeeded', 'Not A Reference', %s)", ["build", DIGEST], "HN003"),
        ("SELECT complete_build_v2(%s, 'w', 'succeeded', %s, 'sha256:xyz')", ["build", REF], "HN003"),
        ("SELECT complete_build(%s, 'w', true, 'not a reference', %s)", ["build", DIGEST], "HN003"),
        ("SELECT complete_build(%s, 'w', true, %s, 'not-a-digest')", ["build", REF], "HN003"),
    ],
)
def test_bad_input_gets_its_code_and_changes_nothing(query, params, code):
    """Each new function's bad input gets its documented SQLSTATE; the queue is unchanged."""
    lic = _license("enterprise")
    (build_id,) = _enqueue(lic.customer, 1)
    _claim()
    values = {"customer": lic.customer.pk, "build": build_id}
    before = list(Build.objects.values_list("id", "status", "worker_id", "retry_count"))
    with raises_sqlstate(code):
        sql_rows(query, [values.get(p, p) for p in params])
    assert list(Build.objects.values_list("id", "status", "worker_id", "retry_count")) == before
    assert not BuildCacheEntry.objects.exists()


def test_enqueue_build_v2_says_created_duplicate_or_cache_hit():
    """enqueue_build_v2 returns the id and created, duplicate (same build) or cache_hit (a new, succeeded build)."""
    customer = _license("pro").customer
    manifest = {"base": "python:3.12", "n": 1}
    first, outcome = services.build_enqueue_v2(customer=customer, manifest=manifest)
    assert outcome == "created"
    again, outcome = services.build_enqueue_v2(customer=customer, manifest=manifest)
    assert (again.pk, outcome) == (first.pk, "duplicate")
    _claim()
    assert _complete(first.pk)
    cached, outcome = services.build_enqueue_v2(customer=customer, manifest=manifest)
    assert outcome == "cache_hit" and cached.pk != first.pk and cached.status == "succeeded"


def test_cancellation_is_final():
    """Once cancel is requested, complete_build records cancelled (never succeeded), says so, and caches nothing."""
    customer = _license("pro").customer
    (build_id,) = _enqueue(customer, 1)
    _claim()
    assert sql_rows("SELECT cancel_build(%s)", [build_id]) == [("cancel_requested",)]
    result = sql_rows("SELECT complete_build_v2(%s, 'w', 'succeeded', %s, %s)", [build_id, REF, DIGEST])
    assert result == [("cancelled",)]
    build = Build.objects.get(pk=build_id)
    assert build.status == "cancelled" and build.image_reference is None
    assert not BuildCacheEntry.objects.exists()
    assert list(BuildResult.objects.filter(build_id=build_id).values_list("status", flat=True)) == ["cancelled"]


def test_cancellation_reaches_the_worker_through_its_heartbeat():
    """After cancel_build, the next update_build_progress returns false and the build is cancelled."""
    (build_id,) = _enqueue(_license("pro").customer, 1)
    _claim()
    sql_rows("SELECT cancel_build(%s)", [build_id])
    assert sql_rows("SELECT update_build_progress(%s, 'w', 50)", [build_id]) == [(False,)]
    assert Build.objects.get(pk=build_id).status == "cancelled"
    assert sql_rows("SELECT complete_build_v2(%s, 'w', 'failed')", [build_id]) == [("not_held",)]


def test_a_retryable_failure_is_queued_again_until_retries_are_spent():
    """retryable: queued again after a backoff with retry_count + 1 and a result per attempt; then failed."""
    (build_id,) = _enqueue(_license("pro").customer, 1)
    Build.objects.filter(pk=build_id).update(max_retries=1)
    _claim()
    assert sql_rows("SELECT complete_build_v2(%s, 'w', 'retryable', NULL, NULL, 'registry 503')", [build_id]) == [
        ("retrying",)
    ]
    build = Build.objects.get(pk=build_id)
    assert (build.status, build.retry_count, build.worker_id) == ("queued", 1, None)
    assert _claim() is None  # not before its backoff
    Build.objects.filter(pk=build_id).update(not_before=build.created_at)
    assert _claim()[0] == build_id
    assert sql_rows("SELECT complete_build_v2(%s, 'w', 'retryable', NULL, NULL, 'registry 503')", [build_id]) == [
        ("failed",)
    ]
    assert Build.objects.get(pk=build_id).status == "failed"
    assert BuildResult.objects.filter(build_id=build_id, status="failed").count() == 2


def test_quota_counter_follows_cancellations_and_cache_hits():
    """get_license_quota_usage reads the counter: a build cancelled before it ran gives its unit back."""
    lic = _license("pro")
    ids = _enqueue(lic.customer, 3)
    sql_rows("SELECT cancel_build(%s)", [ids[0]])
    assert sql_rows("SELECT used FROM get_license_quota_usage(%s)", [lic.pk]) == [(2,)]
    sql_rows("SELECT retry_build(%s)", [ids[0]])
    assert sql_rows("SELECT used FROM get_license_quota_usage(%s)", [lic.pk]) == [(3,)]


@pytest.mark.django_db(transaction=True)
def test_wake_ups_for_release_requeue_retry_and_a_freed_slot():
    """release, a rescued lease, a retryable failure and a freed slot (while an agent waits for one) each NOTIFY
    build_queue with a JSON payload."""
    core = _license("core")
    first, second = _enqueue(core.customer, 2)
    with psycopg.connect(database_url(), autocommit=True) as listener:
        listener.execute("LISTEN build_queue")
        listener.execute("SELECT build_wait('listener')")
        list(listener.notifies(timeout=0.2))
        _claim()
        sql_rows("SELECT release_build(%s, 'w')", [first])
        _claim()
        _complete(first)  # core is at its limit of 1 with `second` waiting: a slot is freed
        assert _claim()[0] == second
        sql_rows("UPDATE build_queue SET heartbeat_at = now() - interval '1 hour' WHERE id = %s", [second])
        sql_rows("SELECT rescue_expired_builds()")
        sql_rows("UPDATE build_queue SET not_before = now() - interval '1 hour' WHERE id = %s", [second])
        _claim()
        sql_rows("SELECT complete_build_v2(%s, 'w', 'retryable')", [second])
        events = [json.loads(n.payload) for n in listener.notifies(timeout=1)]
    assert {"event": "release", "build": str(first), "license": str(core.pk), "priority": 5} in events
    assert {"event": "slot", "license": str(core.pk)} in events  # completing `first` freed core's only slot
    assert {"event": "requeue", "build": str(second), "license": str(core.pk), "priority": 5} in events
    assert {"event": "retry", "build": str(second), "license": str(core.pk), "priority": 5} in events


def test_the_claim_itself_rescues_expired_leases():
    """With no Python worker, a claim rescues a build whose heartbeat expired (at most every 5 seconds)."""
    (build_id,) = _enqueue(_license("pro").customer, 1)
    _claim("silent")
    sql_rows("UPDATE build_queue SET heartbeat_at = now() - interval '10 minutes' WHERE id = %s", [build_id])
    sql_rows("UPDATE build_rescue_clock SET rescued_at = now() - interval '1 minute'")
    assert sql_rows("SELECT * FROM claim_builds('other', 1)") == []
    build = Build.objects.get(pk=build_id)
    assert (build.status, build.retry_count) == ("queued", 1)


def test_counters_follow_a_bulk_insert_and_plain_sql_changes():
    """An INSERT ... SELECT of many builds, and plain UPDATEs/DELETEs, keep the scheduler's counters exact."""
    a, b = _license("enterprise"), _license("pro")
    sql_rows(
        """
        INSERT INTO build_queue (customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit,
                                 progress, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds,
                                 cancel_requested, source, created_at, worker_id, started_at)
        SELECT l.customer_id, l.id, jsonb_build_object('n', g), encode(sha256((l.id::text || g)::bytea), 'hex'),
               CASE WHEN g %% 5 = 0 THEN 10 ELSE 5 END, CASE WHEN g %% 10 = 1 THEN 'running' ELSE 'queued' END,
               false, 0, 0, 3, 3600, 120, false, 'test', clock_timestamp(),
               CASE WHEN g %% 10 = 1 THEN 'w' END, CASE WHEN g %% 10 = 1 THEN now() END
        FROM licenses l CROSS JOIN generate_series(1, 30) g
        WHERE l.id IN (%s, %s)
        """,
        [a.pk, b.pk],
    )
    Build.objects.filter(license=b, status="queued", priority=10).update(status="cancelled")
    Build.objects.filter(license=a, status="queued").order_by("created_at")[:1].get().delete()

    def expected(lic):
        builds = Build.objects.filter(license=lic)
        return (
            builds.filter(status="running").count(),
            builds.filter(status="queued").count(),
            builds.filter(status="queued", priority__gte=9).count(),
        )

    for lic in (a, b):
        state = BuildLicenseState.objects.get(license=lic)
        assert (state.running, state.queued, state.urgent_queued) == expected(lic)
        counted = Build.objects.filter(license=lic).exclude(status="cancelled", started_at__isnull=True).count()
        assert sql_rows("SELECT used FROM get_license_quota_usage(%s)", [lic.pk]) == [(counted,)]


def test_urgent_builds_stay_inside_the_license_cap():
    """The urgent lane goes ahead of the fair order, never past a license's max_concurrent_builds."""
    lic = _license("enterprise", max_concurrent_builds_override=1)
    _enqueue(lic.customer, 1, tag="normal")
    assert _claim() is not None
    _enqueue(lic.customer, 1, priority=10, tag="urgent")
    assert _claim() is None


def test_a_sub_customer_whose_own_license_is_suspended_uses_its_parents():
    """A sub-customer's own license that is not usable (suspended) gives way to its parent's license."""
    parent_license, _parent, children = _family()
    LicenseFactory(customer=children[0], tier="pro", status="suspended")
    build, outcome = services.build_enqueue_v2(customer=children[0], manifest={"a": 1})
    assert (build.license_id, outcome) == (parent_license.pk, "created")


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_migration_counts_existing_builds_and_reverses():
    """builds.0016 applied to a database with queued, running and finished builds fills the counters exactly."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([("builds", "0013_cache_rollup")])
    lic = _license("asp")
    _enqueue(lic.customer, 6)
    first = "(SELECT id FROM build_queue ORDER BY created_at LIMIT 1)"
    last = "(SELECT id FROM build_queue ORDER BY created_at DESC LIMIT 1)"
    sql_rows(f"UPDATE build_queue SET status = 'running', worker_id = 'w', started_at = now() WHERE id = {first}")
    sql_rows(f"UPDATE build_queue SET status = 'cancelled' WHERE id = {last}")
    executor = MigrationExecutor(connection)
    executor.migrate(leaves)
    state = BuildLicenseState.objects.get(license=lic)
    assert (state.running, state.queued, state.max_running) == (1, 4, 32)
    assert sql_rows("SELECT used FROM get_license_quota_usage(%s)", [lic.pk]) == [(5,)]
    assert _claim() is not None
