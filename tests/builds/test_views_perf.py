"""The views after 0012_views_perf: build_performance_summary (grouped in index order) gives the same figures as
0004_queue.sql's definition and hand-computed values, read through build_queue_finished_day_idx; customer_build_usage
plans get_license_quota_usage as the one row it returns."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from tests.builds.factories import BuildFactory, finished_build
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
DAY_1 = dt.datetime(2026, 3, 1, tzinfo=UTC)
DAY_2 = dt.datetime(2026, 3, 2, tzinfo=UTC)
COLUMNS = (
    "customer_id, customer_name, day, total_builds, succeeded, failed, timed_out, cancelled, cache_hits, success_rate,"
    " avg_duration_seconds, p50_duration_seconds, p95_duration_seconds, avg_queue_wait_seconds, p95_queue_wait_seconds"
)


@pytest.fixture
def history():
    """Two customers' builds over two UTC days: outcomes, a cache hit, a cancellation that never ran, a day edge."""
    a, b = LicenseFactory(tier="pro"), LicenseFactory(tier="enterprise")
    noon = DAY_1 + dt.timedelta(hours=12)
    finished_build(a, "succeeded", finished_at=noon, wait_s=10, duration_s=100)
    finished_build(a, "succeeded", finished_at=noon, wait_s=20, duration_s=200)
    finished_build(a, "failed", finished_at=noon, wait_s=30, duration_s=300)
    finished_build(a, "timed_out", finished_at=noon, wait_s=40, duration_s=400)
    finished_build(a, "succeeded", finished_at=noon, cache_hit=True, wait_s=0, duration_s=0)
    finished_build(a, "cancelled", finished_at=noon)
    # 23:59:59.999999 is still day 1; midnight is day 2.
    finished_build(a, "succeeded", finished_at=DAY_2 - dt.timedelta(microseconds=1), wait_s=50, duration_s=500)
    finished_build(a, "failed", finished_at=DAY_2, wait_s=1, duration_s=1)
    finished_build(b, "succeeded", finished_at=DAY_2 + dt.timedelta(hours=1), wait_s=2, duration_s=60)
    BuildFactory(license=b)  # still queued: not in the summary
    return a, b


def _rows(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_summary_against_hand_computed_figures(history):
    """Counts, success rate (cache hits and cancellations excluded), averages and percentiles per customer-day."""
    a, b = history
    rows = {(r[0], r[2]): r for r in _rows(f"SELECT {COLUMNS} FROM build_performance_summary")}
    assert set(rows) == {(a.customer_id, DAY_1.date()), (a.customer_id, DAY_2.date()), (b.customer_id, DAY_2.date())}
    day_1 = rows[(a.customer_id, DAY_1.date())]
    assert day_1[1] == a.customer.name
    # 7 builds: succeeded 100, 200, 500 s; failed 300; timed out 400; a cache hit (0 s); a cancellation.
    assert day_1[3:10] == (7, 3, 1, 1, 1, 1, Decimal("0.6000"))
    # Durations 0, 100, 200, 300, 400, 500: mean 250; p50 250; p95 at rank 4.75 = 400 + 0.75 * 100.
    assert day_1[10:13] == (Decimal("250.000"), Decimal("250.000"), Decimal("475.000"))
    # Waits 0, 10, 20, 30, 40, 50: mean 25; p95 = 40 + 0.75 * 10.
    assert day_1[13:15] == (Decimal("25.000"), Decimal("47.500"))
    assert rows[(a.customer_id, DAY_2.date())][3:15] == (
        1, 0, 1, 0, 0, 0, Decimal("0.0000"), Decimal("1.000"), Decimal("1.000"), Decimal("1.000"),
        Decimal("1.000"), Decimal("1.000"),
    )  # fmt: skip
    assert rows[(b.customer_id, DAY_2.date())][3:10] == (1, 1, 0, 0, 0, 0, Decimal("1.0000"))


def test_summary_equals_the_released_definition(history):
    """Every row and column equals what 0004_queue.sql's definition of the view computes on the same builds."""
    released = Path(__file__).resolve().parents[2] / "builds" / "sql" / "0004_queue.sql"
    text = released.read_text()
    start = text.index("CREATE OR REPLACE VIEW build_performance_summary AS")
    query = text[start : text.index(";", start)].split(" AS\n", 1)[1]
    order = " ORDER BY customer_id, day"
    assert _rows(f"SELECT {COLUMNS} FROM ({query}) v{order}") == _rows(
        f"SELECT {COLUMNS} FROM build_performance_summary{order}"
    )


def _scans(plan, relation):
    """Every node of a JSON plan that reads relation."""
    found = [plan] if plan.get("Relation Name") == relation else []
    for child in plan.get("Plans", []):
        found += _scans(child, relation)
    return found


def test_summary_reads_the_finished_builds_by_index(history):
    """The plan reads build_queue only through the partial indexes of finished builds (since 0032_daily_rollup, for
    the days not folded into build_daily_rollup), never the whole queue. Which of the two the planner takes depends
    on its statistics (on PostgreSQL 18 a skip scan of the per-customer-day index can win); either is bounded."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN (FORMAT JSON) SELECT * FROM build_performance_summary")
        scans = _scans(cursor.fetchone()[0][0]["Plan"], "build_queue")
    assert scans
    assert {scan.get("Index Name") for scan in scans} <= {"build_queue_finished_at_idx", "build_queue_finished_day_idx"}


def test_quota_usage_is_planned_as_one_row():
    """get_license_quota_usage is estimated at 1 row (not 1,000), so customer_build_usage's cost stays honest."""
    license = LicenseFactory(tier="pro")
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT * FROM get_license_quota_usage(%s)", [license.pk])
        assert "rows=1 " in cursor.fetchone()[0]
        cursor.execute("EXPLAIN (FORMAT JSON) SELECT * FROM customer_build_usage")
        assert cursor.fetchone()[0][0]["Plan"]["Total Cost"] < 100_000  # jit_above_cost's default
