"""The daily rollups' mark triggers (builds.0038_rollup_marks, builds.0050_daily_mark_gate): today's work (a claim,
a completion) marks no day, a late row for a folded day still marks that day, and an update of a finished build
that changes nothing the rollup counts marks nothing."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.builds.factories import BuildFactory
from tests.conftest import sql_rows as _rows
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

MARKS = ("build_daily_rollup_mark", "build_results_rollup_mark", "build_results_rollup_mark_row")
DIGEST = "sha256:" + "c" * 64


def _mark_calls() -> dict:
    """Calls of each mark function in this transaction so far (the test's transaction: track_functions is set)."""
    rows = _rows("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE funcname = ANY(%s)", [list(MARKS)])
    return dict(rows)


def _fold():
    _rows("SELECT fold_build_daily_rollup(31, 2, interval '0')")


def test_a_claim_and_a_completion_today_mark_nothing():
    """Every claim and completion used to call build_daily_rollup_mark twice and build a transition table for
    build_results_rollup_mark, only to find no folded day touched. The results' triggers' conditions say so and
    fire nothing; build_queue's update trigger calls build_daily_rollup_mark, whose first test returns (cheaper
    than the WHEN clause PostgreSQL prepared again for every statement, builds.0050), and no day is marked."""
    license = LicenseFactory(tier="pro")
    BuildFactory(license=license)
    _fold()
    _rows("SET LOCAL track_functions = 'all'")
    [(build_id,)] = _rows("SELECT id FROM get_next_build_for_worker('marks')")
    _rows("SELECT complete_build(%s, 'marks', true, 'registry.example/marks:1', %s, NULL)", [build_id, DIGEST])
    assert _rows("SELECT status FROM build_queue WHERE id = %s", [build_id]) == [("succeeded",)]
    assert _rows("SELECT count(*) FROM build_results WHERE build_id = %s", [build_id]) == [(1,)]
    assert _mark_calls() == {"build_daily_rollup_mark": 2}
    assert _rows("SELECT count(*) FROM build_daily_rollup_dirty") == [(0,)]


def test_an_update_of_a_folded_build_marks_its_day_only_if_it_changes_what_is_counted():
    """The update trigger's test (once its WHEN clause, now build_daily_rollup_mark's first lines): a finished
    build of a folded day whose progress, stage or error message changes marks nothing; a change of its status
    marks its finish day."""
    license = LicenseFactory(tier="pro")
    midnight = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    three = midnight - dt.timedelta(days=3)
    old = BuildFactory(license=license)
    _rows(
        "UPDATE build_queue SET status = 'failed', created_at = %s, started_at = %s, finished_at = %s WHERE id = %s",
        [three, three + dt.timedelta(hours=1), three + dt.timedelta(hours=2), old.pk],
    )
    _fold()
    _rows("DELETE FROM build_daily_rollup_dirty")
    _rows("UPDATE build_queue SET progress = 50, stage = 'x', error_message = 'edited' WHERE id = %s", [old.pk])
    assert _rows("SELECT day FROM build_daily_rollup_dirty") == []
    _rows("UPDATE build_queue SET status = 'timed_out' WHERE id = %s", [old.pk])
    assert _rows("SELECT day FROM build_daily_rollup_dirty") == [(three.date(),)]


def test_late_rows_for_a_folded_day_still_mark_it():
    """A build finished three days ago recorded late, and a result created two days ago, mark their days."""
    license = LicenseFactory(tier="pro")
    _fold()
    midnight = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    three, two = midnight - dt.timedelta(days=3), midnight - dt.timedelta(days=2)
    late = BuildFactory(license=license)
    _rows(
        "UPDATE build_queue SET status = 'failed', created_at = %s, started_at = %s, finished_at = %s WHERE id = %s",
        [three, three + dt.timedelta(hours=1), three + dt.timedelta(hours=2), late.pk],
    )
    _rows(
        "INSERT INTO build_results (build_id, attempt, status, log, created_at) VALUES (%s, 1, 'failed', '', %s)",
        [late.pk, two + dt.timedelta(hours=5)],
    )
    assert sorted(day for (day,) in _rows("SELECT day FROM build_daily_rollup_dirty")) == [three.date(), two.date()]
