"""Races settled by the database: two issuers for one customer, and credential adds at the registry limit."""

import datetime as dt
import functools
import hashlib
import uuid

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from builds.models import Build
from licensing import services
from licensing.models import License, RegistryCredential
from tests.conftest import held_elsewhere, run_together
from tests.licensing.factories import CustomerFactory, LicenseFactory


def _race(count, work):
    """Run ``work(i)`` in ``count`` threads that start together, each on its own connection; their outcomes."""
    return [_kind(outcome) for outcome in run_together(*(functools.partial(work, i) for i in range(count)))]


def _kind(outcome):
    if isinstance(outcome, services.LicensingError):
        return ("refused", str(outcome))
    if isinstance(outcome, Exception):
        return ("crashed", repr(outcome))
    return ("ok", outcome)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_issuers_one_wins_the_other_gets_a_clear_error():
    """Two transactions issuing a license to the same customer at once: exactly one license, one clear refusal."""
    customer = CustomerFactory()
    tiers = ["pro", "enterprise"]
    outcomes = _race(2, lambda i: services.license_issue(customer=customer, tier=tiers[i]).license.pk)
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["ok", "refused"], outcomes
    assert [message for kind, message in outcomes if kind == "refused"] == [services.ALREADY_LICENSED]
    assert License.objects.filter(customer=customer, status="active").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_credential_adds_never_pass_the_registry_limit():
    """Four concurrent adds against a limit of two: two succeed, two are refused with the limit message."""
    license = LicenseFactory(tier="core", max_registries_override=2)
    outcomes = _race(
        4,
        lambda i: (
            services.credential_add(
                customer=license.customer,
                registry_type="ghcr",
                registry_url=f"https://r{i}.example",
                username="ci",
                secret=f"s{i}",
            ).pk
        ),
    )
    assert sorted(kind for kind, _ in outcomes) == ["ok", "ok", "refused", "refused"], outcomes
    assert all("allows 2 registry credential" in message for kind, message in outcomes if kind == "refused")
    assert RegistryCredential.objects.filter(customer=license.customer, status="active").count() == 2


@pytest.mark.django_db(transaction=True)
def test_expire_licenses_skips_rows_locked_by_a_busy_transaction():
    """expire_licenses() does not wait behind a locked license: it expires the others now and that one next run."""
    past = {"starts_at": timezone.now() - dt.timedelta(days=9), "expires_at": timezone.now() - dt.timedelta(days=1)}
    busy, idle = LicenseFactory(**past), LicenseFactory(**past)
    with (
        held_elsewhere(lambda: License.objects.select_for_update().get(pk=busy.pk)),
        connections["default"].cursor() as cursor,
    ):
        cursor.execute("SELECT expire_licenses()")
        assert cursor.fetchone()[0] == 1
    assert dict(License.objects.values_list("pk", "status")) == {busy.pk: "active", idle.pk: "expired"}
    assert services.licenses_expire() == 1


@pytest.mark.django_db(transaction=True)
def test_issuing_does_not_block_builds_being_inserted_for_the_customer():
    """While an issue holds its customer lock, another connection can still insert a build for that customer."""
    license = LicenseFactory()
    inserted = []
    with held_elsewhere(lambda: services._lock_customer(license.customer)), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
        inserted.append(
            Build.objects.create(
                customer=license.customer,
                license=license,
                manifest={},
                manifest_hash=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
            ).pk
        )
    assert len(inserted) == 1
