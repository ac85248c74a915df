"""SQL API: expire_licenses(), revoke_expired_credentials(p_grace_days) and quota usage across a month boundary."""

import datetime as dt
import hashlib
import uuid

import pytest
from django.db import connection

from builds.models import Build
from builds.queue import selectors as queue_selectors
from licensing import selectors
from licensing.models import License, RegistryCredential
from tests.conftest import raises_db_error
from tests.licensing.factories import LicenseFactory, RegistryCredentialFactory

pytestmark = pytest.mark.django_db


def _sql(query, params=()):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()[0]


def _now():
    """The transaction's now(), which the SQL functions compare with."""
    return _sql("SELECT now()")


def test_expire_licenses_expires_exactly_at_expires_at():
    """A license whose expires_at is now() is expired; one a microsecond later is not; the count is returned."""
    now = _now()
    start = now - dt.timedelta(days=30)
    at_expiry = LicenseFactory(starts_at=start, expires_at=now)
    just_before = LicenseFactory(starts_at=start, expires_at=now + dt.timedelta(microseconds=1))
    long_gone = LicenseFactory(starts_at=start, expires_at=now - dt.timedelta(days=1))
    perpetual = LicenseFactory(expires_at=None)
    assert _sql("SELECT expire_licenses()") == 2
    statuses = dict(License.objects.values_list("id", "status"))
    assert statuses[at_expiry.pk] == "expired" and statuses[long_gone.pk] == "expired"
    assert statuses[just_before.pk] == "active" and statuses[perpetual.pk] == "active"
    assert not selectors.license_is_usable(license=at_expiry, at=now)
    assert selectors.license_is_usable(license=just_before, at=now)


def test_expire_licenses_is_idempotent_and_leaves_other_states():
    """A second run changes nothing; suspended, revoked and deleted licenses are left alone."""
    now = _now()
    past = {"starts_at": now - dt.timedelta(days=30), "expires_at": now - dt.timedelta(days=1)}
    LicenseFactory(**past)
    suspended = LicenseFactory(status="suspended", **past)
    revoked = LicenseFactory(status="revoked", **past)
    deleted = LicenseFactory(deleted_at=now, **past)
    assert _sql("SELECT expire_licenses()") == 1
    assert _sql("SELECT expire_licenses()") == 0
    for license in (suspended, revoked, deleted):
        before = license.status
        license.refresh_from_db()
        assert license.status == before


def _credential(expires_at, status="active", **fields):
    return RegistryCredentialFactory(
        expires_at=expires_at,
        status=status,
        revoked_at=fields.pop("revoked_at", None),
        **fields,
    )


def test_revoke_expired_credentials_applies_the_grace_period():
    """Past expiry a credential becomes expired; once expired longer than the grace period it is revoked."""
    now = _now()
    fresh = _credential(now + dt.timedelta(days=1))
    within_grace = _credential(now - dt.timedelta(days=3))
    past_grace = _credential(now - dt.timedelta(days=8))
    expired_past_grace = _credential(now - dt.timedelta(days=10), status="expired")
    no_expiry = _credential(None)
    assert _sql("SELECT revoke_expired_credentials()") == 3
    statuses = dict(RegistryCredential.objects.values_list("id", "status"))
    assert statuses[fresh.pk] == "active" and statuses[no_expiry.pk] == "active"
    assert statuses[within_grace.pk] == "expired"
    assert statuses[past_grace.pk] == "revoked" and statuses[expired_past_grace.pk] == "revoked"
    assert RegistryCredential.objects.get(pk=past_grace.pk).revoked_at == now
    assert _sql("SELECT revoke_expired_credentials()") == 0


def test_revoke_expired_credentials_with_a_custom_grace():
    """p_grace_days moves the cut-off: with 0 days every credential past expiry is revoked."""
    now = _now()
    credential = _credential(now - dt.timedelta(hours=1))
    assert _sql("SELECT revoke_expired_credentials(30)") == 1
    assert RegistryCredential.objects.get(pk=credential.pk).status == "expired"
    assert _sql("SELECT revoke_expired_credentials(0)") == 1
    assert RegistryCredential.objects.get(pk=credential.pk).status == "revoked"


@pytest.mark.parametrize("grace", [-1, None])
def test_revoke_expired_credentials_refuses_a_bad_grace(grace):
    """A negative or NULL grace period is a clear P0 error."""
    with raises_db_error("grace period must be zero or more days") as info:
        _sql("SELECT revoke_expired_credentials(%s)", [grace])
    assert info.value.__cause__.sqlstate.startswith("P0")


def _build(license, created_at):
    build = Build.objects.create(
        customer=license.customer,
        license=license,
        manifest={"n": str(uuid.uuid4())},
        manifest_hash=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
    )
    Build.objects.filter(pk=build.pk).update(created_at=created_at)


def test_quota_usage_across_a_month_boundary():
    """The selector counts this UTC month only: a build a microsecond before the month does not count."""
    license = LicenseFactory(tier="core")
    month_start = _sql("SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
    _build(license, month_start - dt.timedelta(microseconds=1))
    _build(license, month_start - dt.timedelta(days=3))
    _build(license, month_start)
    usage = queue_selectors.license_quota_usage(license=license)
    assert (usage.monthly_quota, usage.used, usage.remaining) == (50, 1, 49)
    assert usage.period_start == month_start
    annotated = queue_selectors.licenses_with_quota_used().get(pk=license.pk)
    assert annotated.quota_used == 1
