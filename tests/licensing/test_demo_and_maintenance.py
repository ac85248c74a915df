"""The licensing demo loader and the daily maintenance tasks, with their audit-trail context."""

import datetime as dt
import io
import random

import pytest
from django.core.management import call_command
from django.utils import timezone

from honua.registry import demo_loaders, maintenance_tasks
from licensing import demo, selectors
from licensing.models import Customer, License, LicenseEvent, RegistryCredential, RegistryCredentialEvent
from tests.licensing.factories import LicenseFactory, RegistryCredentialFactory

pytestmark = pytest.mark.django_db


def test_demo_covers_every_tier_a_trial_an_expired_license_and_registry_types():
    """The demo set has all four tiers, one trial, one expired license and credentials of several types."""
    summary = demo.load(rng=random.Random(1), scale="demo")
    assert summary.startswith(f"{len(demo.CUSTOMERS)} customers created")
    licenses = License.objects.filter(customer__metadata__demo="licensing")
    assert set(licenses.values_list("tier", flat=True)) == {"core", "pro", "enterprise", "asp"}
    assert licenses.filter(is_trial=True, status="active").count() == 1
    assert licenses.filter(status="expired").count() == 1
    assert RegistryCredential.objects.values("registry_type").distinct().count() >= 5
    for credential in RegistryCredential.objects.all():
        assert selectors.credential_secret(credential=credential).startswith("demo-")


def test_demo_is_idempotent_through_seed_demo():
    """Running seed_demo twice neither fails nor duplicates, and the history names the command."""
    assert "licensing" in [loader.name for loader in demo_loaders()]
    call_command("seed_demo", stdout=io.StringIO())
    counts = (Customer.objects.count(), License.objects.count(), RegistryCredential.objects.count())
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "licensing: 0 customers created" in out.getvalue()
    assert (Customer.objects.count(), License.objects.count(), RegistryCredential.objects.count()) == counts
    assert LicenseEvent.objects.filter(pgh_context__metadata__command="seed_demo").count() >= len(demo.CUSTOMERS)


def test_demo_skips_other_scales():
    """Only the 'demo' scale loads anything."""
    assert demo.load(rng=random.Random(1), scale="large") == "nothing for this scale"
    assert not Customer.objects.exists()


def _task(name):
    return {task.name: task for task in maintenance_tasks()}[name]


def test_maintenance_tasks_are_registered_daily():
    """expire_licenses and revoke_expired_credentials run daily."""
    assert _task("expire_licenses").schedule == "daily"
    assert _task("revoke_expired_credentials").schedule == "daily"


def test_expire_licenses_task_dry_run_then_run():
    """The dry run counts what would change and changes nothing; the run changes it and records the command."""
    now = timezone.now()
    license = LicenseFactory(starts_at=now - dt.timedelta(days=9), expires_at=now - dt.timedelta(days=1))
    assert _task("expire_licenses").run(dry_run=True) == 1
    license.refresh_from_db()
    assert license.status == "active"
    assert _task("expire_licenses").run(dry_run=False) == 1
    assert _task("expire_licenses").run(dry_run=False) == 0
    event = LicenseEvent.objects.get(pgh_obj_id=license.pk, status="expired")
    assert event.pgh_context.metadata == {"command": "maintenance:expire_licenses"}


def test_revoke_expired_credentials_task_dry_run_then_run():
    """The dry run agrees with the run; the run records the command in the history."""
    now = timezone.now()
    old = RegistryCredentialFactory(expires_at=now - dt.timedelta(days=30))
    RegistryCredentialFactory(expires_at=now - dt.timedelta(days=1))
    RegistryCredentialFactory(expires_at=now + dt.timedelta(days=1))
    assert _task("revoke_expired_credentials").run(dry_run=True) == 2
    assert _task("revoke_expired_credentials").run(dry_run=False) == 2
    assert _task("revoke_expired_credentials").run(dry_run=True) == 0
    event = RegistryCredentialEvent.objects.get(pgh_obj_id=old.pk, status="revoked")
    assert event.pgh_context.metadata["command"] == "maintenance:revoke_expired_credentials"
