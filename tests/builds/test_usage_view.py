"""customer_build_usage after builds.0036_usage_view: the same figures as the quota function and direct counts, read
as one join (the quota function inlined) and through the partial index of cache-hit builds."""

import datetime as dt

import pytest

from tests.builds.test_quota_usage import _build, _month_start
from tests.conftest import sql_rows as _rows
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

QUOTA_COLUMNS = "monthly_quota, builds_this_month, builds_remaining, period_start, period_end"


def test_usage_matches_the_quota_function_and_counts_this_months_cache_hits():
    """For each license: the quota columns equal get_license_quota_usage's row, and cache_hits_this_month counts the
    license's cache hits created this UTC month, not last month's nor another license's."""
    start = _month_start()
    busy = LicenseFactory(tier="pro", monthly_build_quota_override=5)
    other = LicenseFactory(tier="core")
    idle = LicenseFactory(tier="enterprise")
    for created in (start + dt.timedelta(hours=1), start + dt.timedelta(days=2)):
        _build(busy, created, status="succeeded", cache_hit=True)
        _build(busy, created, status="failed", started_at=created)
    _build(busy, start - dt.timedelta(microseconds=1), status="succeeded", cache_hit=True)  # last month
    _build(busy, start - dt.timedelta(days=3), status="failed", started_at=start - dt.timedelta(days=3))
    _build(other, start + dt.timedelta(hours=2), status="succeeded", cache_hit=True)

    for license, hits in ((busy, 2), (other, 1), (idle, 0)):
        [view] = _rows(
            f"SELECT {QUOTA_COLUMNS}, cache_hits_this_month FROM customer_build_usage WHERE license_id = %s",
            [license.pk],
        )
        [function] = _rows("SELECT * FROM get_license_quota_usage(%s)", [license.pk])
        assert view[:5] == function, license.tier
        assert view[5] == hits, license.tier
    [busy_row] = _rows(f"SELECT {QUOTA_COLUMNS} FROM customer_build_usage WHERE license_id = %s", [busy.pk])
    assert busy_row[:3] == (5, 2, 3)


def test_usage_is_one_plan_without_a_function_call_per_license():
    """The quota row is inlined (no Function Scan: a PL/pgSQL call per license cost 870 ms at ten times the seed) and
    the month's cache hits come from build_queue_cache_hit_idx, not from every build of the month."""
    LicenseFactory(tier="pro")
    plan = "\n".join(row[0] for row in _rows("EXPLAIN SELECT * FROM customer_build_usage"))
    assert "Function Scan" not in plan, plan
    assert "build_queue_cache_hit_idx" in plan, plan
