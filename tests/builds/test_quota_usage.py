"""get_license_quota_usage: the calendar month in UTC, counting builds that used a worker."""

import datetime as dt
import hashlib
import uuid

import pytest
from django.db import connection

from builds.models import Build
from tests.conftest import raises_db_error
from tests.licensing.factories import LicenseFactory


def _license(tier="core", **fields):
    return LicenseFactory(tier=tier, **fields)


def _build(license, created_at, **fields):
    build = Build.objects.create(
        customer=license.customer,
        license=license,
        manifest={"n": str(uuid.uuid4())},
        manifest_hash=hashlib.sha256(str(uuid.uuid4()).encode()).hexdigest(),
        **fields,
    )
    Build.objects.filter(pk=build.pk).update(created_at=created_at)
    return build


def _usage(license_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM get_license_quota_usage(%s)", [license_id])
        return cursor.fetchone()


def _month_start():
    with connection.cursor() as cursor:
        cursor.execute("SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_quota_counts_this_utc_month_only():
    """Builds from the last instant of the previous month do not count; the first instant of this month does."""
    license = _license("core")
    start = _month_start()
    _build(license, start - dt.timedelta(microseconds=1))
    _build(license, start)
    _build(license, start + dt.timedelta(days=1))
    quota, used, remaining, period_start, period_end = _usage(license.pk)
    assert (quota, used, remaining) == (50, 2, 48)
    assert period_start == start
    assert period_end.month == (start.month % 12) + 1 and period_end.day == 1


@pytest.mark.django_db
def test_cache_hits_and_builds_cancelled_before_running_do_not_count():
    """A cache hit or a build cancelled while queued uses no quota; one cancelled while running does."""
    license = _license("pro", monthly_build_quota_override=3)
    now = _month_start() + dt.timedelta(hours=1)
    _build(license, now, status="succeeded", cache_hit=True)
    _build(license, now, status="cancelled")
    _build(license, now, status="cancelled", started_at=now, worker_id=None)
    _build(license, now, status="failed", started_at=now)
    assert _usage(license.pk)[:3] == (3, 2, 1)


@pytest.mark.django_db
def test_remaining_never_goes_below_zero():
    """When more builds exist than the quota (quota lowered), remaining is 0, not negative."""
    license = _license("core", monthly_build_quota_override=1)
    now = _month_start() + dt.timedelta(hours=1)
    _build(license, now)
    _build(license, now)
    assert _usage(license.pk)[:3] == (1, 2, 0)


@pytest.mark.django_db
def test_unknown_license_is_a_clear_error():
    """An unknown license id raises an error naming it."""
    missing = uuid.uuid4()
    with raises_db_error(f"license {missing} does not exist"):
        _usage(missing)
