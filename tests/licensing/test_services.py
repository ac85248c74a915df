"""Licensing services: issue, tier changes, suspend/reinstate/revoke/renew, credentials and their limit."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from licensing import selectors, services
from licensing.models import Customer, License, RegistryCredential, RegistryCredentialEvent
from tests.conftest import raises_db_error
from tests.licensing.factories import CustomerFactory, LicenseFactory, RegistryCredentialFactory

pytestmark = pytest.mark.django_db

IN_A_MONTH = dt.timedelta(days=30)
NEXT_MONTH = timezone.now() + IN_A_MONTH


def _state():
    """Everything the services write, to show that a refused call changed nothing."""
    return (
        sorted(Customer.objects.values_list("id", "name", "deleted_at")),
        sorted(License.objects.values_list("id", "tier", "status", "expires_at", "is_trial", "updated_at")),
        sorted(RegistryCredential.objects.values_list("id", "status", "secret_encrypted", "updated_at")),
    )


def _credential(customer, secret="pw-123", **fields):
    return services.credential_add(
        customer=customer,
        registry_type=fields.pop("registry_type", "ghcr"),
        registry_url=fields.pop("registry_url", "https://ghcr.io"),
        username=fields.pop("username", "ci"),
        secret=secret,
        **fields,
    )


def test_create_customer_with_trial():
    """A new customer gets an active trial license of the tier that expires after the trial days."""
    customer, issued = services.customer_create_with_trial(name="Acme", contact_email="a@acme.example", trial_days=7)
    license = issued.license
    assert license.customer == customer and license.is_trial and license.status == "active"
    assert license.tier == "pro"
    assert dt.timedelta(days=6, hours=23) < license.expires_at - timezone.now() <= dt.timedelta(days=7)
    assert selectors.license_usable_for_customer(customer=customer) == license


@pytest.mark.parametrize("trial_days", [0, 91])
def test_trial_days_out_of_range_change_nothing(trial_days):
    """A trial of 0 or more than 90 days is refused before anything is created."""
    before = _state()
    with pytest.raises(services.LicensingError, match="between 1 and 90"):
        services.customer_create_with_trial(name="Acme", trial_days=trial_days)
    assert _state() == before


def test_issue_returns_the_key_once_and_stores_it_encrypted():
    """Issuing returns the plaintext key; the row holds only ciphertext and a blind index that finds it."""
    issued = services.license_issue(customer=CustomerFactory(), tier="core")
    assert issued.key.startswith("HONUA-") and len(issued.key) == 6 + 4 * 8 + 3
    assert issued.key not in repr(issued)
    stored = License.objects.get(pk=issued.license.pk)
    assert issued.key not in stored.license_key_encrypted
    assert stored.license_key_encrypted.startswith("v1:")
    assert selectors.license_key(license=stored) == issued.key
    assert selectors.license_find_by_key(issued.key) == stored
    assert selectors.license_find_by_key(f"  {issued.key.lower()} ") == stored
    assert selectors.license_find_by_key("HONUA-NOPE") is None
    assert selectors.license_find_by_key("") is None


def test_issued_limits_follow_the_tier_unless_overridden():
    """Limits left out come from the tier; given ones override it."""
    license = services.license_issue(
        customer=CustomerFactory(), tier="core", monthly_build_quota=75, feature_overrides={"sbom": True}
    ).license
    assert (license.monthly_build_quota, license.max_concurrent_builds, license.max_registries) == (75, 1, 1)
    assert selectors.license_has_feature(license=license, feature="sbom")
    assert not selectors.license_has_feature(license=license, feature="signing")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tier": "platinum"}, "Unknown tier 'platinum'"),
        ({"tier": "core", "monthly_build_quota": -1}, "monthly build quota must be zero or more"),
        ({"tier": "core", "max_registries": -3}, "max registries must be zero or more"),
        ({"tier": "core", "feature_overrides": {"teleport": True}}, "Unknown feature"),
        ({"tier": "core", "feature_overrides": {"sbom": "yes"}}, "must be true or false"),
        ({"tier": "core", "monthly_build_quota": True}, "monthly build quota must be zero or more"),
        ({"tier": "core", "is_trial": True}, "A trial license needs an expiry date"),
        (
            {"tier": "core", "starts_at": NEXT_MONTH, "expires_at": NEXT_MONTH},
            "The expiry must be after the start",
        ),
        ({"tier": "core", "expires_at": timezone.now() - dt.timedelta(days=1)}, "The expiry must be after the start"),
    ],
)
def test_bad_issue_input_is_a_clear_error_and_changes_nothing(kwargs, message):
    """Unknown tier, negative limits, unknown features and bad periods are refused with a clear message."""
    customer = CustomerFactory()
    before = _state()
    with pytest.raises(services.LicensingError, match=message):
        services.license_issue(customer=customer, **kwargs)
    assert _state() == before


def test_expiry_in_the_past_with_a_past_start_is_refused():
    """An already-expired license cannot be issued."""
    with pytest.raises(services.LicensingError, match="The expiry must be in the future"):
        services.license_issue(
            customer=CustomerFactory(),
            tier="core",
            starts_at=timezone.now() - dt.timedelta(days=10),
            expires_at=timezone.now() - dt.timedelta(days=1),
        )


def test_second_usable_license_is_refused():
    """A customer with a usable license cannot get a second one; nothing changes."""
    license = LicenseFactory()
    before = _state()
    with pytest.raises(services.LicensingError, match="already has a usable license"):
        services.license_issue(customer=license.customer, tier="enterprise")
    assert _state() == before


def test_database_refuses_a_second_active_license():
    """The partial unique index refuses a second active license even when the services are bypassed."""
    license = LicenseFactory()
    with raises_db_error("licenses_one_active_per_customer"):
        LicenseFactory(customer=license.customer)


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"tier": "platinum"}, "licenses_tier_valid"),
        ({"monthly_build_quota_override": -1}, "monthly_build_quota_override"),
        (
            {"expires_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "starts_at": dt.datetime(2021, 1, 1, tzinfo=dt.UTC)},
            "licenses_expires_after_start",
        ),
        ({"status": "paused"}, "licenses_status_valid"),
    ],
)
def test_database_enforces_license_checks(fields, constraint):
    """The database itself refuses unknown tiers and statuses, negative limits and an expiry before the start."""
    with raises_db_error(constraint):
        LicenseFactory(**fields)


def test_lapsed_active_license_does_not_block_a_new_one():
    """An active license past its expiry (not yet flipped by expire_licenses) is expired and replaced."""
    old = LicenseFactory(starts_at=timezone.now() - IN_A_MONTH, expires_at=timezone.now() - dt.timedelta(seconds=1))
    new = services.license_issue(customer=old.customer, tier="core").license
    old.refresh_from_db()
    assert old.status == "expired" and new.status == "active"


def test_upgrade_and_downgrade_follow_the_tier_without_overrides():
    """Without overrides, every limit and feature follows the new tier, both ways."""
    license = services.license_issue(customer=CustomerFactory(), tier="core").license
    license = services.license_change_tier(license=license, tier="enterprise")
    assert (license.monthly_build_quota, license.max_concurrent_builds, license.max_registries) == (5000, 16, None)
    assert selectors.license_has_feature(license=license, feature="signing")
    license = services.license_change_tier(license=license, tier="pro")
    assert (license.monthly_build_quota, license.max_concurrent_builds, license.max_registries) == (500, 4, 5)
    assert not selectors.license_has_feature(license=license, feature="signing")


def test_tier_change_keeps_overrides_unless_cleared():
    """Overrides survive a tier change; clear_overrides drops them so the tier's defaults apply."""
    license = services.license_issue(
        customer=CustomerFactory(), tier="core", monthly_build_quota=123, feature_overrides={"signing": True}
    ).license
    license = services.license_change_tier(license=license, tier="pro")
    assert license.monthly_build_quota == 123 and license.max_concurrent_builds == 4
    assert selectors.license_has_feature(license=license, feature="signing")
    license = services.license_change_tier(license=license, tier="pro", clear_overrides=True)
    assert license.monthly_build_quota == 500
    assert not selectors.license_has_feature(license=license, feature="signing")


def test_set_overrides_sets_and_clears_only_what_is_given():
    """license_set_overrides changes the named limits and leaves the others."""
    license = services.license_issue(customer=CustomerFactory(), tier="pro", max_concurrent_builds=9).license
    license = services.license_set_overrides(license=license, monthly_build_quota=7)
    assert (license.monthly_build_quota, license.max_concurrent_builds) == (7, 9)
    license = services.license_set_overrides(license=license, max_concurrent_builds=None)
    assert (license.monthly_build_quota, license.max_concurrent_builds) == (7, 4)
    with pytest.raises(services.LicensingError, match="zero or more"):
        services.license_set_overrides(license=license, max_registries=-1)


def test_downgrade_below_active_credentials_is_refused():
    """A downgrade whose registry limit is below the active credentials is refused and changes nothing."""
    customer = CustomerFactory()
    license = services.license_issue(customer=customer, tier="pro").license
    _credential(customer)
    _credential(customer, registry_url="https://quay.io")
    before = _state()
    with pytest.raises(services.LicensingError, match="The core tier allows 1 registry credential"):
        services.license_change_tier(license=license, tier="core")
    assert _state() == before


def test_unknown_tier_change_is_refused():
    """Changing to an unknown tier is a clear error."""
    license = LicenseFactory()
    with pytest.raises(services.LicensingError, match="Unknown tier"):
        services.license_change_tier(license=license, tier="gold")


def test_suspend_and_reinstate():
    """A suspended license is not usable; reinstating makes it usable again; wrong states are refused."""
    license = LicenseFactory()
    license = services.license_suspend(license=license, reason="unpaid invoice")
    assert license.status == "suspended" and license.suspended_at and "unpaid invoice" in license.notes
    assert selectors.license_usable_for_customer(customer=license.customer) is None
    with pytest.raises(services.LicensingError, match="Only an active license can be suspended"):
        services.license_suspend(license=license)
    license = services.license_reinstate(license=license)
    assert license.status == "active" and license.suspended_at is None
    with pytest.raises(services.LicensingError, match="Only a suspended license can be reinstated"):
        services.license_reinstate(license=license)


def test_suspend_and_revoke_record_when_and_why_on_the_stored_license():
    """Suspending and revoking stamp their time and append the reason to the notes, one line each."""
    license = services.license_suspend(license=LicenseFactory(notes="VIP"), reason="unpaid invoice")
    assert License.objects.get(pk=license.pk).suspended_at is not None
    license = services.license_reinstate(license=license)
    services.license_revoke(license=license, reason="fraud")
    stored = License.objects.get(pk=license.pk)
    assert stored.notes == "VIP\nSuspended: unpaid invoice\nRevoked: fraud"
    assert (stored.status, stored.suspended_at) == ("revoked", None) and stored.revoked_at is not None


def test_reinstate_refused_when_another_license_is_usable():
    """A suspended license cannot come back while the customer has another usable license."""
    old = services.license_suspend(license=LicenseFactory())
    services.license_issue(customer=old.customer, tier="core")
    with pytest.raises(services.LicensingError, match="already has a usable license"):
        services.license_reinstate(license=old)


def test_revoke_is_final_and_idempotent():
    """A revoked license stays revoked, cannot be renewed or changed, and revoking again is harmless."""
    license = services.license_revoke(license=LicenseFactory(), reason="fraud")
    assert license.status == "revoked" and license.revoked_at
    assert services.license_revoke(license=license).revoked_at == license.revoked_at
    with pytest.raises(services.LicensingError, match="cannot be renewed"):
        services.license_renew(license=license, expires_at=timezone.now() + IN_A_MONTH)
    with pytest.raises(services.LicensingError, match="cannot be changed"):
        services.license_change_tier(license=license, tier="asp")


def test_renew_brings_an_expired_license_back():
    """Renewing an expired license sets the new expiry and makes it active; ending the trial clears is_trial."""
    _, issued = services.customer_create_with_trial(name="Trial Co")
    License.objects.filter(pk=issued.license.pk).update(status="expired")
    until = timezone.now() + dt.timedelta(days=365)
    license = services.license_renew(license=issued.license, expires_at=until, end_trial=True)
    assert (license.status, license.expires_at, license.is_trial) == ("active", until, False)


def test_renew_a_trial_without_expiry_is_refused():
    """A trial cannot be renewed to no expiry (it must end or convert)."""
    _, issued = services.customer_create_with_trial(name="Trial Co")
    with pytest.raises(services.LicensingError, match="A trial license needs an expiry date"):
        services.license_renew(license=issued.license, expires_at=None)


def test_renew_refused_when_another_license_is_usable():
    """An expired license cannot be renewed while the customer has another usable one."""
    old = LicenseFactory(status="expired")
    services.license_issue(customer=old.customer, tier="core")
    with pytest.raises(services.LicensingError, match="already has a usable license"):
        services.license_renew(license=old, expires_at=timezone.now() + IN_A_MONTH)


def test_soft_delete_frees_the_slot():
    """A deleted license no longer counts as the customer's usable license."""
    license = services.license_soft_delete(license=LicenseFactory())
    assert license.deleted_at is not None
    assert services.license_issue(customer=license.customer, tier="pro").license.status == "active"


def test_credential_add_encrypts_the_secret():
    """A credential's secret is stored encrypted (bound to its row) and read back by the selector."""
    customer = LicenseFactory(tier="pro").customer
    credential = _credential(customer, secret="hunter2-registry", expires_at=timezone.now() + IN_A_MONTH)
    assert "hunter2-registry" not in credential.secret_encrypted
    assert selectors.credential_secret(credential=credential) == "hunter2-registry"
    assert "hunter2" not in repr(credential) and "hunter2" not in str(credential)
    assert list(selectors.credentials_active_for_customer(customer=customer)) == [credential]


def test_registry_limit_is_enforced():
    """A core license allows one active credential; the second is refused; revoking frees the slot."""
    customer = LicenseFactory(tier="core").customer
    first = _credential(customer)
    before = _state()
    with pytest.raises(services.LicensingError, match="allows 1 registry credential"):
        _credential(customer, registry_url="https://quay.io")
    assert _state() == before
    services.credential_revoke(credential=first)
    assert _credential(customer, registry_url="https://quay.io").status == "active"


def test_unlimited_registries_for_enterprise():
    """An enterprise license (no registry limit) takes many credentials."""
    customer = LicenseFactory(tier="enterprise").customer
    for n in range(7):
        _credential(customer, registry_url=f"https://r{n}.example")
    assert RegistryCredential.objects.filter(customer=customer).count() == 7


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"secret": ""}, "The secret must not be empty"),
        ({"secret": "   "}, "The secret must not be empty"),
        ({"registry_type": "ftp"}, "Unknown registry type"),
        ({"registry_url": " "}, "The registry URL must not be empty"),
        ({"username": ""}, "The username must not be empty"),
        ({"expires_at": timezone.now() - dt.timedelta(days=1)}, "The expiry must be in the future"),
    ],
)
def test_bad_credential_input_is_a_clear_error_and_changes_nothing(fields, message):
    """Empty secret, unknown type, empty URL/username or a past expiry are refused with a clear message."""
    customer = LicenseFactory().customer
    before = _state()
    with pytest.raises(services.LicensingError, match=message):
        _credential(customer, **fields)
    assert _state() == before


def test_credential_needs_a_usable_license():
    """Without a usable license no credential can be added."""
    customer = services.license_suspend(license=LicenseFactory()).customer
    with pytest.raises(services.LicensingError, match="no usable license"):
        _credential(customer)
    assert services.credential_limit_problem(customer=customer) == services.NO_USABLE_LICENSE


@pytest.mark.parametrize("stored", ["", "hunter2"])
def test_database_refuses_an_empty_or_unencrypted_secret(stored):
    """The database refuses an empty or plaintext stored secret even when the services are bypassed."""
    with raises_db_error("registry_creds_secret_(not_empty|encrypted_format)"):
        RegistryCredentialFactory(secret_encrypted=stored)


def test_database_refuses_a_plaintext_license_key():
    """The license key column only takes values in the encrypted format."""
    with raises_db_error("licenses_key_encrypted_format"):
        LicenseFactory(license_key_encrypted="HONUA-PLAINTEXT")


@pytest.mark.parametrize("overrides", [[], "sbom", 1])
def test_database_refuses_non_object_feature_overrides(overrides):
    """Feature overrides must be a JSON object (they are merged over the tier's flags)."""
    with raises_db_error("licenses_feature_overrides_object"):
        LicenseFactory(feature_overrides=overrides)


def test_rotate_secret_and_revoke_credential():
    """A secret can be replaced; a revoked credential cannot get a new one; revoking is idempotent."""
    customer = LicenseFactory().customer
    credential = _credential(customer, secret="first")
    credential = services.credential_rotate_secret(credential=credential, secret="second")
    assert selectors.credential_secret(credential=credential) == "second"
    with pytest.raises(services.LicensingError, match="must not be empty"):
        services.credential_rotate_secret(credential=credential, secret="")
    credential = services.credential_revoke(credential=credential)
    assert credential.status == "revoked" and credential.revoked_at
    assert services.credential_revoke(credential=credential).revoked_at == credential.revoked_at
    with pytest.raises(services.LicensingError, match="revoked"):
        services.credential_rotate_secret(credential=credential, secret="third")


def test_mark_used_records_the_time():
    """credential_mark_used sets last_used_at."""
    credential = _credential(LicenseFactory().customer)
    services.credential_mark_used(credential=credential)
    credential.refresh_from_db()
    assert credential.last_used_at is not None


def test_license_has_feature_rejects_unknown_features():
    """Asking about a feature that does not exist is an error, not a silent False."""
    with pytest.raises(ValueError, match="Unknown feature 'warp'"):
        selectors.license_has_feature(license=LicenseFactory(), feature="warp")


def test_model_clean_mirrors_the_database():
    """License.clean() reports an expiry before the start, a trial without expiry and unknown features."""
    from django.core.exceptions import ValidationError

    license = License(
        tier="core",
        is_trial=True,
        starts_at=timezone.now(),
        feature_overrides={"warp": True},
    )
    with pytest.raises(ValidationError) as info:
        license.clean()
    assert set(info.value.message_dict) == {"expires_at", "feature_overrides"}
    license = License(tier="core", starts_at=timezone.now(), expires_at=timezone.now() - IN_A_MONTH)
    with pytest.raises(ValidationError, match="The expiry must be after the start"):
        license.clean()


def test_usable_means_active_undeleted_and_unexpired():
    """license_is_usable and usable_licenses agree: expired by time, suspended or deleted licenses are not usable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
    usable = LicenseFactory(expires_at=now + dt.timedelta(seconds=5))
    lapsed = LicenseFactory(starts_at=now - IN_A_MONTH, expires_at=now)
    assert selectors.license_is_usable(license=usable, at=now)
    assert not selectors.license_is_usable(license=lapsed, at=now)
    assert set(selectors.usable_licenses(at=now)) == {usable}


def test_renewing_a_lapsed_active_license_keeps_it_active_without_an_expired_blip():
    """Renewing an active license past its expiry extends it in place: its history has no 'expired' step."""
    license = LicenseFactory(starts_at=timezone.now() - IN_A_MONTH, expires_at=timezone.now() - dt.timedelta(hours=1))
    license = services.license_renew(license=license, expires_at=timezone.now() + IN_A_MONTH)
    assert license.status == "active"
    assert not license.events.filter(status="expired").exists()


def test_maintenance_wrappers_count_and_refuse_a_negative_grace():
    """licenses_expire and credentials_revoke_expired return counts; a negative grace period is refused."""
    LicenseFactory(starts_at=timezone.now() - IN_A_MONTH, expires_at=timezone.now() - dt.timedelta(hours=1))
    assert services.licenses_expire() == 1
    RegistryCredentialFactory(expires_at=timezone.now() - dt.timedelta(days=1))
    assert services.credentials_revoke_expired(grace_days=0) == 1
    with pytest.raises(services.LicensingError, match="zero or more days"):
        services.credentials_revoke_expired(grace_days=-1)


def test_hard_deletes_are_recorded_in_the_audit_trail():
    """Deleting a credential (e.g. a purge of soft-deleted rows) leaves a 'delete' event without its secret."""
    credential = RegistryCredentialFactory()
    pk = credential.pk
    credential.delete()
    assert list(
        RegistryCredentialEvent.objects.filter(pgh_obj_id=pk).order_by("pgh_id").values_list("pgh_label", flat=True)
    ) == [
        "insert",
        "delete",
    ]
