"""build_performance_summary from build_daily_rollup (issue 15): the folded closed days plus the live days give
every row and column the released definition computes from build_queue directly, before and after folding, after
a late change to a folded day, and while a bounded fold is half done; folding a day again gives the same rows."""

import datetime as dt
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build
from builds.queue import services
from tests.builds.factories import BuildFactory, finished_build
from tests.conftest import held_elsewhere, raises_db_error
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
COLUMNS = (
    "customer_id, customer_name, day, total_builds, succeeded, failed, timed_out, cancelled, cache_hits, success_rate,"
    " avg_duration_seconds, p50_duration_seconds, p95_duration_seconds, avg_queue_wait_seconds, p95_queue_wait_seconds"
)
ROLLUP = (
    "customer_id, day, total_builds, succeeded, failed, timed_out, cancelled, cache_hits, success_rate,"
    " avg_duration_seconds, p50_duration_seconds, p95_duration_seconds, avg_queue_wait_seconds,"
    " p95_queue_wait_seconds, started_builds, duration_seconds_sum, queue_wait_seconds_sum"
)
ORDER = " ORDER BY customer_id, day"


def _rows(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _execute(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)


def _released_query() -> str:
    """The view's body as 0012_views_perf.sql released it: every figure computed from build_queue directly."""
    text = (Path(__file__).resolve().parents[2] / "builds" / "sql" / "0012_views_perf.sql").read_text()
    start = text.index("CREATE OR REPLACE VIEW build_performance_summary AS")
    return text[start : text.index(";", start)].split(" AS\n", 1)[1]


def direct():
    return _rows(f"SELECT {COLUMNS} FROM ({_released_query()}) v{ORDER}")


def summary():
    return _rows(f"SELECT {COLUMNS} FROM build_performance_summary{ORDER}")


def fold(max_days=31, refold_days=2):
    """One fold with no grace period, so "yesterday" is closed whatever the time of day the test runs."""
    return _rows("SELECT fold_build_daily_rollup(%s, %s, interval '0')", [max_days, refold_days])[0][0]


def folded_through():
    return _rows("SELECT folded_through FROM build_daily_rollup_state")[0][0]


def rollup():
    return _rows(f"SELECT {ROLLUP} FROM build_daily_rollup{ORDER}")


def _midnight(days_ago: int) -> dt.datetime:
    return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
        days=days_ago
    )


@pytest.fixture
def history():
    """Two customers' builds over six UTC days up to today: every outcome, cache hits, a cancellation that never
    ran, builds on both sides of midnight, and one still running since yesterday evening."""
    a, b = LicenseFactory(tier="pro"), LicenseFactory(tier="enterprise")
    statuses = ("succeeded", "failed", "timed_out", "succeeded", "cancelled")
    for days_ago in range(5, 0, -1):
        day = _midnight(days_ago)
        for i in range(6):
            status = statuses[(i + days_ago) % len(statuses)]
            at = day + dt.timedelta(hours=2 + 3 * i, minutes=days_ago)
            finished_build(a, status, finished_at=at, wait_s=5 * i + days_ago, duration_s=60 + 17 * i * days_ago)
        finished_build(b, "succeeded", finished_at=day + dt.timedelta(hours=9), wait_s=3, duration_s=90 + days_ago)
        finished_build(b, "succeeded", finished_at=day + dt.timedelta(hours=10), cache_hit=True, wait_s=0, duration_s=0)
        finished_build(b, "cancelled", finished_at=day + dt.timedelta(hours=11))
        # The last microsecond of the day is still this day.
        finished_build(b, "failed", finished_at=day + dt.timedelta(days=1, microseconds=-1), wait_s=7, duration_s=30)
    # Today so far (earlier than now whatever the hour): live rows.
    today = _midnight(0)
    finished_build(a, "succeeded", finished_at=today, wait_s=4, duration_s=44)
    finished_build(b, "failed", finished_at=today + (timezone.now() - today) / 2, wait_s=8, duration_s=88)
    late = BuildFactory(license=a)  # claimed yesterday evening, still running
    Build.objects.filter(pk=late.pk).update(
        status="running",
        worker_id="w-late",
        created_at=today - dt.timedelta(minutes=20),
        started_at=today - dt.timedelta(minutes=10),
    )
    BuildFactory(license=b)  # queued: not in the summary
    return a, b, late


def test_summary_equals_the_direct_computation_before_and_after_folding(history):
    """Unfolded (the view reads the queue), then folded through yesterday (rollup + today's live rows): every row
    and column equals the released definition; the rollup holds exactly the closed days."""
    expected = direct()
    assert len(expected) == 12  # 5 closed days x 2 customers, today x 2
    assert summary() == expected
    assert fold() > 0
    assert folded_through() == _midnight(1).date()
    assert {row[1] for row in rollup()} == {_midnight(d).date() for d in range(1, 6)}
    assert summary() == expected


def test_a_build_that_finishes_after_midnight_counts_on_the_day_it_finished(history):
    """The build claimed yesterday finishes today, after yesterday was folded: it is today's (live), yesterday's
    folded row is unchanged, and both equal the direct computation."""
    late = history[2]
    fold()
    yesterday_before = [row for row in rollup() if row[1] == _midnight(1).date()]
    Build.objects.filter(pk=late.pk).update(status="succeeded", finished_at=timezone.now(), progress=100)
    assert summary() == direct()
    assert [row for row in rollup() if row[1] == _midnight(1).date()] == yesterday_before
    assert not _rows("SELECT day FROM build_daily_rollup_dirty")  # today is not folded: nothing to mark
    fold()
    assert summary() == direct()


def test_a_late_change_to_a_folded_day_is_read_live_then_refolded(history):
    """A finished build of a folded day is retried (it leaves its day), another is recorded late with a finish in
    a folded day: the days are marked, the view reads them live (equal at once), and the next fold re-folds them
    (equal again, nothing left marked) even beyond the re-fold window."""
    a, b, _ = history
    fold()
    old_day = _midnight(4)
    retried = Build.objects.filter(
        customer_id=a.customer_id, finished_at__gte=old_day, finished_at__lt=old_day + dt.timedelta(days=1)
    ).first()
    Build.objects.filter(pk=retried.pk).update(status="queued", finished_at=None, started_at=None)
    finished_build(b, "timed_out", finished_at=_midnight(3) + dt.timedelta(hours=5), wait_s=1, duration_s=3600)
    assert sorted(row[0] for row in _rows("SELECT day FROM build_daily_rollup_dirty")) == [
        _midnight(4).date(),
        _midnight(3).date(),
    ]
    assert summary() == direct()
    fold(refold_days=0)
    assert not _rows("SELECT day FROM build_daily_rollup_dirty")
    assert summary() == direct()
    # The rollup itself now matches a fold from scratch.
    refolded = rollup()
    _execute(
        "TRUNCATE build_daily_rollup, build_daily_rollup_dirty;"
        " UPDATE build_daily_rollup_state SET folded_through = NULL"
    )
    fold()
    assert rollup() == refolded


def test_folding_is_idempotent(history):
    """Folding every day again gives the same rows (a day is replaced whole, never added to)."""
    fold()
    first = rollup()
    assert fold(refold_days=10) == 10  # no new day: the ten re-folded ones
    assert rollup() == first
    assert summary() == direct()


def test_folding_is_bounded_and_resumable(history):
    """At most max_days new days per call, oldest first; the view is right after every partial fold, and the
    calls end with every closed day folded."""
    expected = direct()
    calls = []
    while True:
        before = folded_through()
        folded = fold(max_days=2, refold_days=0)
        calls.append(folded)
        assert folded <= 2
        assert summary() == expected
        if folded_through() == before:
            break
    assert folded_through() == _midnight(1).date()
    assert calls == [2, 2, 1, 0]  # five closed days, two per call


def test_the_hourly_task_folds_and_bad_arguments_change_nothing(history):
    """The maintenance service folds in bounded batches until caught up; a bad argument is a clear error."""
    with raises_db_error("max_days >= 1"):
        fold(max_days=0)
    assert folded_through() is None
    services.build_daily_rollup_fold(max_days=2)
    assert folded_through() is not None and folded_through() >= _midnight(2).date()
    assert summary() == direct()


def _last_closed_tomorrow() -> dt.date:
    """The last day closed a day from now with no grace period: today, unless a transaction that began today is
    still open in this database (it may hold rows of today the mark triggers let by)."""
    return _rows("SELECT build_daily_rollup_last_closed(now() + interval '1 day', interval '0')")[0][0]


def test_a_day_is_not_closed_while_a_transaction_begun_before_its_end_is_open(history):
    """A transaction of another session that began today and has written (it has a transaction id) holds today
    open (the fold would not fold it yet, and the view keeps reading it live); once it ends, today closes. One that
    has written nothing holds nothing open (its later writes to a past day are marked), nor does the caller's own."""
    today = _midnight(0).date()
    assert _last_closed_tomorrow() == today
    with held_elsewhere(lambda: _rows("SELECT pg_current_xact_id()")):
        assert _last_closed_tomorrow() == today - dt.timedelta(days=1)
        assert _rows("SELECT build_daily_rollup_oldest_open() >= now()")[0][0] is True  # began after this test's
    assert _last_closed_tomorrow() == today
    assert _rows("SELECT build_daily_rollup_oldest_open()")[0][0] is None
    with held_elsewhere(lambda: _rows("SELECT count(*) FROM build_queue")):
        assert _last_closed_tomorrow() == today


def test_the_summary_reads_the_rollup_without_an_anti_join(history):
    """The folded days less the dirty ones come from comparing each rollup row's day with the dirty days read once,
    not from a join per rollup row (builds.0042); the rows stay the released definition's with a day marked."""
    fold()
    plan = "\n".join(row[0] for row in _rows("EXPLAIN SELECT * FROM build_performance_summary"))
    assert "Anti Join" not in plan and "InitPlan" in plan
    a, _, _ = history
    finished_build(a, "failed", finished_at=_midnight(2) + dt.timedelta(hours=1), wait_s=1, duration_s=2)
    assert _rows("SELECT day FROM build_daily_rollup_dirty") == [(_midnight(2).date(),)]
    assert summary() == direct()
