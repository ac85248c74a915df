"""The dashboard's 30-day build activity from build_activity_daily (issue 15): the folded closed days plus the live
days give exactly the figures the query over the month's results gave (kept here as ``released``), for every
customer and for one, before and after folding, across midnight, and after a late change to a folded day."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build, BuildResult
from console import selectors
from tests.builds.factories import BuildFactory
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC

# The released query of console.selectors.build_activity: every figure from build_results over the whole range.
RELEASED_SQL = """
SELECT date_bin(%(step)s, r.created_at, %(origin)s) AS bucket, r.status, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.queue_wait_ms) AS wait_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY r.queue_wait_ms) AS wait_p95,
       sum(r.duration_ms) AS duration, count(r.duration_ms) AS timed
FROM build_results r
{customer_join}
WHERE r.created_at >= %(start)s
GROUP BY GROUPING SETS ((1, 2), (1), ())
"""
RELEASED_JOIN = "JOIN build_queue b ON b.id = r.build_id AND b.customer_id = %(customer)s"
RELEASED_SERVED = "SELECT count(*) FROM build_queue WHERE created_at >= %(start)s AND cache_hit {customer_filter}"


def released(range_key: str, customer_id=None) -> selectors.BuildActivity:
    """build_activity as released: one pass over the range's results."""
    chosen = selectors.RANGES[range_key]
    buckets = chosen.window()
    index = {bucket: i for i, bucket in enumerate(buckets)}
    n = len(buckets)
    by_status = {status: [0] * n for status in selectors.FINISHED_STATUSES}
    p50: list = [None] * n
    p95: list = [None] * n
    total_p50 = total_p95 = average = None
    seconds = selectors._seconds
    params = {"step": chosen.step, "origin": dt.datetime(2000, 1, 1, tzinfo=UTC), "start": buckets[0]}
    params["customer"] = customer_id
    with connection.cursor() as cursor:
        cursor.execute(RELEASED_SQL.format(customer_join=RELEASED_JOIN if customer_id else ""), params)
        for bucket, status, count, wait_p50, wait_p95, duration, timed in cursor.fetchall():
            if bucket is None:
                total_p50, total_p95 = seconds(wait_p50), seconds(wait_p95)
                average = (duration or 0) / timed if timed else None
                continue
            i = index.get(bucket.astimezone(UTC))
            if i is None:
                continue
            if status is None:
                p50[i], p95[i] = seconds(wait_p50), seconds(wait_p95)
            else:
                by_status[status][i] += count
        filter_ = "AND customer_id = %(customer)s" if customer_id else ""
        cursor.execute(RELEASED_SERVED.format(customer_filter=filter_), params)
        (served,) = cursor.fetchone()
    return selectors.BuildActivity(chosen, buckets, by_status, p50, p95, total_p50, total_p95, average, served)


def _midnight(days_ago: int) -> dt.datetime:
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days_ago)


def _result(license, status, at, *, wait_ms=None, duration_ms=None):
    build = BuildFactory(license=license)
    Build.objects.filter(pk=build.pk).update(status=status, finished_at=at, created_at=at, progress=100)
    return BuildResult.objects.create(
        build=build, status=status, queue_wait_ms=wait_ms, duration_ms=duration_ms, created_at=at
    )


def _served(license, at):
    build = BuildFactory(license=license)
    Build.objects.filter(pk=build.pk).update(status="succeeded", cache_hit=True, created_at=at, finished_at=at)
    return build


def fold(refold_days=2):
    """Folds (no grace period, so yesterday is closed at any hour) until yesterday is folded; the days folded."""
    total = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT fold_build_daily_rollup(31, %s, interval '0')", [refold_days])
            total += cursor.fetchone()[0]
            cursor.execute("SELECT folded_through FROM build_daily_rollup_state")
            if cursor.fetchone()[0] == _midnight(1).date():
                return total


def dirty_days():
    with connection.cursor() as cursor:
        cursor.execute("SELECT day FROM build_daily_rollup_dirty ORDER BY day")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def month():
    """Two customers' attempts over 35 UTC days up to today: every outcome, waits with and without a value, the
    first and last microsecond of days, cache-served builds, and days before the range."""
    a, b = LicenseFactory(tier="pro"), LicenseFactory(tier="enterprise")
    statuses = ("succeeded", "failed", "timed_out", "succeeded", "cancelled")
    for days_ago in (34, 30, 29, 20, 7, 3, 2, 1):
        day = _midnight(days_ago)
        for i in range(4):
            at = day + dt.timedelta(hours=1 + 5 * i, minutes=days_ago)
            _result(
                a, statuses[(i + days_ago) % 5], at, wait_ms=137 * i + days_ago * 11, duration_ms=900 + i * days_ago
            )
        _result(b, "succeeded", day, wait_ms=5000 + days_ago, duration_ms=70_000)
        _result(b, "failed", day + dt.timedelta(days=1, microseconds=-1), wait_ms=None, duration_ms=None)
        _served(b if days_ago % 2 else a, day + dt.timedelta(hours=12))
    _served(a, _midnight(1) + dt.timedelta(days=1, microseconds=-1))
    today = _midnight(0)
    _result(a, "succeeded", today, wait_ms=42, duration_ms=4242)
    _result(b, "timed_out", today + (timezone.now() - today) / 2, wait_ms=99, duration_ms=3_600_000)
    _served(b, today)
    return a, b


def _all_equal(a, b):
    for customer in (None, a.customer_id, b.customer_id):
        expected = released("30d", customer)
        assert selectors.build_activity("30d", customer_id=customer) == expected, customer
    return expected


def test_daily_range_equals_the_released_query_before_and_after_folding(month):
    """Unfolded (all live), then folded through yesterday (rollup + today live): every bucket's counts and
    percentiles, the range's percentiles, average and cache-served count are the released ones, for every
    customer and each one; the rollup holds the closed days with a row over all customers per day."""
    a, b = month
    _all_equal(a, b)
    assert released("30d").finished == 6 * 6 + 2  # days 34 and 30 fall before the range
    assert fold() > 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM build_activity_daily WHERE customer_id IS NULL AND day >= %s", [_midnight(29).date()]
        )
        assert cursor.fetchone()[0] == 6  # days 29, 20, 7, 3, 2, 1
    _all_equal(a, b)


def test_the_rollup_answers_closed_days_without_reading_their_results(month):
    """After folding, the closed days come from build_activity_daily: a result removed from the table behind the
    triggers' back (as if the day had been archived) does not change the figures, so they were not re-read."""
    fold()
    before = selectors.build_activity("30d")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # no trigger fires
        cursor.execute(
            "DELETE FROM build_results WHERE created_at >= %s AND created_at < %s", [_midnight(20), _midnight(19)]
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
    assert selectors.build_activity("30d") == before
    assert released("30d") != before


def test_a_late_change_to_a_folded_day_is_read_live_then_refolded(month):
    """A result recorded late in a folded day, one purged, one changing status, and a build of a folded day
    becoming cache-served: the days are marked, read live (equal at once), and the next fold
    re-folds them (equal again, nothing left marked), beyond the re-fold window."""
    a, b = month
    fold()
    # A second attempt's result recorded late into a folded day, and one result purged: build_queue untouched.
    today_build = Build.objects.filter(customer_id=b.customer_id, finished_at__gte=_midnight(0)).first()
    BuildResult.objects.create(
        build=today_build,
        status="cancelled",
        queue_wait_ms=1,
        duration_ms=1,
        created_at=_midnight(20) + dt.timedelta(hours=23),
    )
    BuildResult.objects.filter(created_at__gte=_midnight(7), created_at__lt=_midnight(6)).first().delete()
    BuildResult.objects.filter(created_at__gte=_midnight(3), created_at__lt=_midnight(2)).update(status="failed")
    late = BuildFactory(license=a)
    Build.objects.filter(pk=late.pk).update(status="succeeded", created_at=_midnight(29), finished_at=_midnight(0))
    Build.objects.filter(pk=late.pk).update(cache_hit=True)
    assert dirty_days() == [_midnight(d).date() for d in (29, 20, 7, 3)]
    _all_equal(a, b)
    fold(refold_days=0)
    assert not dirty_days()
    _all_equal(a, b)


def test_refolding_gives_the_same_rows(month):
    """Folding a day again (from scratch) gives the same rows: the fold replaces each day whole."""
    fold()
    query = "SELECT customer_id, day, succeeded, failed, timed_out, cancelled, duration_ms_sum, timed, queue_wait_ms,"
    query += " wait_p50_ms, wait_p95_ms, cache_served FROM build_activity_daily ORDER BY day, customer_id"
    with connection.cursor() as cursor:
        cursor.execute(query)
        first = cursor.fetchall()
        cursor.execute("UPDATE build_daily_rollup_state SET folded_through = folded_through - 40")
    fold()
    with connection.cursor() as cursor:
        cursor.execute(query)
        assert cursor.fetchall() == first


def test_hour_ranges_stay_live(month):
    """The 1h and 24h ranges read a bounded recent window live and are unchanged; the 7d range too."""
    a, _ = month
    fold()
    for key in ("1h", "24h", "7d"):
        assert selectors.build_activity(key) == released(key)
        assert selectors.build_activity(key, customer_id=a.customer_id) == released(key, a.customer_id)
