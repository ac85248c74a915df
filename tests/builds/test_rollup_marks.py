"""The daily rollups' mark triggers (builds.0038_rollup_marks): today's work (a claim, a completion) fires none of
them, and a late row for a folded day still marks that day."""

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


def test_a_claim_and_a_completion_today_fire_no_mark():
    """Every claim and completion used to call build_daily_rollup_mark twice and build a transition table for
    build_results_rollup_mark, only to find no folded day touched; the triggers' conditions now say so."""
    license = LicenseFactory(tier="pro")
    BuildFactory(license=license)
    _fold()
    _rows("SET LOCAL track_functions = 'all'")
    [(build_id,)] = _rows("SELECT id FROM get_next_build_for_worker('marks')")
    _rows("SELECT complete_build(%s, 'marks', true, 'registry.example/marks:1', %s, NULL)", [build_id, DIGEST])
    assert _rows("SELECT status FROM build_queue WHERE id = %s", [build_id]) == [("succeeded",)]
    assert _rows("SELECT count(*) FROM build_results WHERE build_id = %s", [build_id]) == [(1,)]
    assert _mark_calls() == {}


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
