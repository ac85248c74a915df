"""Operators' automation commands: create_customer, issue_license (key printed once), add_registry_credential, with
--format json, thin over licensing.services; refusals exit 1 with the service's message and change nothing."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from licensing import selectors, services
from licensing.models import Customer, License, RegistryCredential
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db


def _json(*args, stdin=None, monkeypatch=None):
    out = io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command(*args, "--format", "json", stdout=out)
    return json.loads(out.getvalue())


def test_create_a_customer_then_issue_a_license_whose_key_works(monkeypatch):
    """The customer's id and the license key come back as JSON; the key finds the license by its blind index."""
    customer = _json("create_customer", "--name", "Acme Ltd", "--contact-email", "ops@acme.example")
    assert Customer.objects.get(pk=customer["id"]).name == "Acme Ltd"
    issued = _json("issue_license", "--customer", customer["id"], "--tier", "pro", "--expires", "2099-12-31")
    license = License.objects.get(pk=issued["id"])
    assert (issued["tier"], issued["status"], issued["customer_id"]) == ("pro", "active", customer["id"])
    assert issued["expires_at"].startswith("2099-12-31T00:00:00")
    assert selectors.license_find_by_key(issued["license_key"]) == license
    assert issued["license_key"] not in str(License.objects.filter(pk=license.pk).values().first())


def test_add_a_registry_credential_reads_the_secret_from_stdin_and_never_prints_it(monkeypatch):
    """The secret comes from stdin, is stored encrypted and appears in no output."""
    license = LicenseFactory()
    data = _json(
        "add_registry_credential", "--customer", str(license.customer_id), "--type", "ghcr", "--url",
        "https://ghcr.io", "--username", "acme-bot", "--secret-stdin", stdin="ghp_s3cret\n", monkeypatch=monkeypatch,
    )  # fmt: skip
    credential = RegistryCredential.objects.get(pk=data["id"])
    assert credential.username == "acme-bot" and "ghp_s3cret" not in json.dumps(data)
    assert "ghp_s3cret" not in str(RegistryCredential.objects.filter(pk=credential.pk).values().first())


def test_refusals_exit_1_with_the_services_message_and_change_nothing():
    """A second usable license, an unknown customer and a credential without a license are refused (exit 1)."""
    license = LicenseFactory()
    with pytest.raises(CommandError, match=services.ALREADY_LICENSED) as info:
        call_command("issue_license", "--customer", str(license.customer_id), "--tier", "core", stdout=io.StringIO())
    assert info.value.returncode == 1
    assert License.objects.filter(customer=license.customer).count() == 1
    with pytest.raises(CommandError, match="does not exist"):
        call_command("issue_license", "--customer", "not-a-uuid", "--tier", "core", stdout=io.StringIO())
    bare = Customer.objects.create(name="No license")
    with pytest.raises(CommandError, match=services.NO_USABLE_LICENSE):
        call_command(
            "add_registry_credential", "--customer", str(bare.pk), "--type", "ghcr", "--url", "https://ghcr.io",
            "--username", "u", "--secret-env", "HOME", stdout=io.StringIO(),
        )  # fmt: skip
    assert not RegistryCredential.objects.exists()
    with pytest.raises(CommandError, match="name must not be empty"):
        call_command("create_customer", "--name", " ", stdout=io.StringIO())
