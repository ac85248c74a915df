"""The claim picks its license from ``build_license_state_claim_idx`` (builds/sql/0045_claim_index.sql): in the
claim's own order, over the claimable licenses only, so a pick reads a few pages however many licenses the state
table holds and however many dead row versions it carries.

The claim used to scan and sort the whole table: 2,902 buffers per claim after the queue benchmark's pgbench rounds
(90.6 fresh). Buffers are read from the nested plans (auto_explain), so these tests do not depend on timing.
"""

import random

import pytest

from builds.models import BuildLicenseState
from tests.builds.test_scheduler import _claim, _complete, _enqueue, _license
from tests.conftest import buffers_of, nested_plans, plan_of, sql_rows

pytestmark = pytest.mark.django_db

PICK = "FROM build_license_state s"
IDLE_LICENSES = 3_000

# The claim's order as builds.0029_claim_pauses wrote it, over the counters themselves: the reference the index must
# reproduce exactly.
OLD_PICK = """
    SELECT s.license_id FROM build_license_state s
    WHERE s.queued > 0 AND s.running < s.max_running AND NOT s.paused
    ORDER BY s.urgent_queued > 0 DESC, s.vtime, s.license_id
    LIMIT 1
"""


@pytest.fixture
def crowded_state():
    """Three licenses with work queued among 3,000 state rows of licenses with nothing to claim, each of those
    updated twice more (dead row versions that nothing has removed: the test's own transaction holds them): the
    table is hundreds of pages. Returns the three licenses."""
    licenses = [_license(tier) for tier in ("core", "pro", "enterprise")]
    for license_ in licenses:
        _enqueue(license_.customer, 3)
    sql_rows(
        """
        INSERT INTO build_license_state (license_id, running, queued, urgent_queued, vtime, max_running)
        SELECT gen_random_uuid(), 0, 0, 0, random(), 4 FROM generate_series(1, %s)
        """,
        [IDLE_LICENSES],
    )
    for _ in range(2):
        sql_rows("UPDATE build_license_state SET vtime = vtime + 1 WHERE queued = 0")
    sql_rows("ANALYZE build_license_state")
    return licenses


def _table_pages() -> int:
    return sql_rows("SELECT pg_relation_size('build_license_state') / current_setting('block_size')::int")[0][0]


def test_the_pick_reads_the_claim_index_in_the_claims_order(crowded_state):
    """The pick is an index scan of build_license_state_claim_idx, not a scan and sort of the table."""
    with nested_plans() as plans:
        assert _claim() is not None
    plan = plan_of(plans, PICK)
    assert "Index Scan using build_license_state_claim_idx" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan


def test_the_pick_reads_a_few_pages_however_many_licenses_and_dead_versions(crowded_state):
    """Each of eight claims (with completions between them) reads at most a dozen buffers to pick its license, where
    the table is hundreds of pages; the claim as a whole stays within a bound that does not grow with the table."""
    pages = _table_pages()
    assert pages > 300, pages  # what a scan of the table would read
    _complete(_claim()[0])  # plans the claim's statements: the catalog reads of a first call are not the claim's
    picks, claims = [], []
    for _ in range(8):
        with nested_plans(buffers=True) as plans:
            row = _claim()
        assert row is not None
        picks.append(buffers_of(plan_of(plans, PICK)))
        claims.append(buffers_of(plan_of(plans, "get_next_build_for_worker")))
        _complete(row[0])
    assert max(picks) <= 12, picks
    assert max(claims) < pages // 2, (claims, pages)


def test_the_index_gives_the_old_order_over_the_old_predicate():
    """Two hundred claims and completions over licenses with scrambled virtual times, urgent work, caps reached and
    a paused license: before every claim the index's first license is the one the old scan and sort would pick, and
    the claim takes a build of it."""
    rng = random.Random(45)
    licenses = [_license(tier) for tier in ("core", "core", "pro", "enterprise", "enterprise", "asp")]
    for license_ in licenses:
        _enqueue(license_.customer, 40)
    _enqueue(licenses[3].customer, 5, priority=9, tag="urgent")  # enterprise: the priority boost
    sql_rows("SELECT pause_claims('license', %s, 'test', 'held')", [licenses[4].pk])
    running = []
    for step in range(200):
        if step % 25 == 0:  # scramble the fair order (as long-idle licenses returning would)
            for license_ in licenses:
                sql_rows(
                    "UPDATE build_license_state SET vtime = %s WHERE license_id = %s",
                    [rng.choice([0.0, 0.5, 1.0, rng.random() * 3]), license_.pk],
                )
        expected = sql_rows(OLD_PICK)
        row = _claim()
        if row is None:
            assert expected == [], step
            break
        assert row[1] == expected[0][0], step
        running.append(row[0])
        if len(running) > rng.randint(0, 5):
            _complete(running.pop(rng.randrange(len(running))))
    assert step > 150
    assert not sql_rows("SELECT 1 FROM build_queue WHERE license_id = %s AND status <> 'queued'", [licenses[4].pk])


def test_claimable_is_the_old_predicate():
    """The generated flags are the old predicate and the old urgent test, on every kind of row."""
    sql_rows(
        """
        INSERT INTO build_license_state (license_id, running, queued, urgent_queued, vtime, max_running, paused)
        SELECT gen_random_uuid(), r, q, u, 0, m, p
        FROM generate_series(0, 2) r, generate_series(0, 2) q, generate_series(0, 1) u, generate_series(1, 2) m,
             (VALUES (true), (false)) v(p)
        WHERE u <= q
        """
    )
    mismatched = sql_rows(
        """
        SELECT license_id FROM build_license_state
        WHERE claimable IS DISTINCT FROM (queued > 0 AND running < max_running AND NOT paused)
           OR urgent IS DISTINCT FROM (urgent_queued > 0)
        """
    )
    assert mismatched == []
    assert BuildLicenseState.objects.filter(claimable=True).exists()


def _hot_updates() -> tuple[int, int]:
    return tuple(
        sql_rows("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'build_license_state'")[
            0
        ]
    )


def test_completions_below_the_cap_and_enqueues_keep_the_state_row_update_hot():
    """The index is on the generated flags, not the counters: a completion below the license's cap and an enqueue
    that finds work already queued update the state row without an index entry (HOT); a claim, which moves the
    license's virtual time, does not."""
    license_ = _license("enterprise")  # 16 concurrent builds
    _enqueue(license_.customer, 3)
    first, second = _claim(), _claim()
    before = _hot_updates()
    _complete(first[0])
    _enqueue(license_.customer, 1, tag="more")
    after = _hot_updates()
    assert after[0] - before[0] == 2, (before, after)
    assert after[1] - before[1] == 2, (before, after)
    _claim()
    claimed = _hot_updates()
    assert claimed[0] - after[0] == 1 and claimed[1] == after[1], (after, claimed)
    assert second is not None


def test_licenses_waiting_for_a_retry_backoff_cost_one_pick():
    """Ten licenses first in the fair order whose queued builds all wait for their retry backoff (as the rescue of
    a fleet's lost builds leaves them): the claim passes over them within its one pick and takes the ready
    license's build, instead of locking each, finding no build and picking again."""
    waiting = [_license("pro") for _ in range(10)]
    for license_ in waiting:
        _enqueue(license_.customer, 1, tag="retry")
    sql_rows(
        "UPDATE build_queue SET not_before = now() + interval '30 seconds' WHERE license_id = ANY(%s::uuid[])",
        [[str(license_.pk) for license_ in waiting]],
    )
    ready = _license("pro")
    _enqueue(ready.customer, 2)
    sql_rows("UPDATE build_license_state SET vtime = 5 WHERE license_id = %s", [ready.pk])
    _complete(_claim()[0])  # plans the claim's statements
    with nested_plans() as plans:
        row = _claim()
    assert row is not None and row[1] == ready.pk
    picks = [plan for plan in plans if PICK in plan.split("Query Text:", 1)[1].split("\n  ", 1)[0]]
    assert len(picks) == 1, len(picks)
    assert "build_queue_tenant_claim_idx" in picks[0], picks[0]
    assert not sql_rows(
        "SELECT 1 FROM build_queue WHERE license_id = ANY(%s::uuid[]) AND status <> 'queued'",
        [[str(license_.pk) for license_ in waiting]],
    )
