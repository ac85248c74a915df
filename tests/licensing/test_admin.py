"""The licensing admin: every page renders and shows no secret; writes go through the services."""

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from licensing import selectors, services
from licensing.models import Customer, License, LicenseEvent, RegistryCredential
from tests.licensing.factories import CustomerFactory, LicenseFactory

pytestmark = pytest.mark.django_db

KEY_PATTERN = re.compile(r"HONUA-[A-Z2-7]{8}-[A-Z2-7]{8}-[A-Z2-7]{8}-[A-Z2-7]{8}")


def _url(model, view, *args):
    return reverse(f"admin:licensing_{model._meta.model_name}_{view}", args=args)


def _populate():
    """Customers of every tier with licenses in every state and credentials; every secret in clear form."""
    secrets = []
    for n, tier in enumerate(["core", "pro", "enterprise", "asp"]):
        customer = services.customer_create(name=f"Tier {tier} Co")
        issued = services.license_issue(
            customer=customer, tier=tier, expires_at=timezone.now() + dt.timedelta(days=3 + 20 * n)
        )
        secrets.append(issued.key)
        secret = f"pw-{tier}-Xq9"
        services.credential_add(
            customer=customer, registry_type="ghcr", registry_url=f"https://{tier}.example", username="u", secret=secret
        )
        secrets.append(secret)
    _, trial = services.customer_create_with_trial(name="Trial Co")
    secrets.append(trial.key)
    suspended = services.license_suspend(license=services.license_issue(customer=CustomerFactory(), tier="pro").license)
    services.license_revoke(license=services.license_issue(customer=suspended.customer, tier="core").license)
    derived = list(License.objects.values_list("license_key_encrypted", "license_key_index"))
    derived += [(value, "") for value in RegistryCredential.objects.values_list("secret_encrypted", flat=True)]
    forbidden = secrets + [value for pair in derived for value in pair if value]
    forbidden += [secret[:8] for secret in secrets if secret.startswith("HONUA-")]  # no masked prefix either
    return [value for value in forbidden if value != "HONUA-"]


def _admin_urls():
    urls = [reverse("admin:index"), reverse("admin:app_list", args=["licensing"])]
    for model in (Customer, License, RegistryCredential):
        urls += [_url(model, "changelist"), _url(model, "add")]
        for pk in model.objects.values_list("pk", flat=True):
            urls += [_url(model, "change", pk), _url(model, "history", pk)]
    changelist = _url(License, "changelist")
    urls += [f"{changelist}?expiring=7", f"{changelist}?expiring=30", f"{changelist}?expiring=lapsed"]
    urls += [
        f"{changelist}?tier=pro",
        f"{changelist}?status=suspended",
        f"{changelist}?is_trial=1",
        f"{changelist}?q=Tier",
    ]
    credentials = _url(RegistryCredential, "changelist")
    urls += [f"{credentials}?status=active", f"{credentials}?registry_type=ghcr"]
    return urls


def test_every_admin_page_renders_and_shows_no_secret(admin_client):
    """Index, changelists (with filters), add, change and history pages render, with no key, secret,
    ciphertext, blind index or key prefix anywhere in them."""
    forbidden = _populate()
    urls = _admin_urls()
    assert len(urls) > 40
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        leaked = [value for value in forbidden if value in page]
        assert leaked == [], url


def test_license_changelist_shows_quota_and_status(admin_client, django_assert_max_num_queries):
    """The license list shows quota used/remaining per license in a bounded number of queries."""
    _populate()
    with django_assert_max_num_queries(12):
        response = admin_client.get(_url(License, "changelist"))
    page = response.content.decode().lower()
    assert "quota used" in page and "quota remaining" in page
    assert ">5000<" in page.replace(",", "")  # enterprise: nothing used, 5,000 remaining
    assert "suspended" in page and "revoked" in page


def test_issue_license_in_admin_shows_the_key_once(admin_client):
    """Adding a license issues it through the service; its key appears once on the answer, never again."""
    customer = CustomerFactory()
    response = admin_client.post(
        _url(License, "add"),
        {"customer": customer.pk, "tier": "enterprise", "feature_overrides": "{}", "notes": "via admin"},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    keys = KEY_PATTERN.findall(response.content.decode())
    assert len(keys) == 1
    license = selectors.license_find_by_key(keys[0])
    assert license.customer == customer and license.tier == "enterprise"
    for url in (
        _url(License, "change", license.pk),
        _url(License, "changelist"),
        _url(Customer, "change", customer.pk),
    ):
        assert keys[0] not in admin_client.get(url).content.decode()


def test_issue_license_in_admin_refuses_a_second_usable_license(admin_client):
    """The add form says why a second usable license is refused, and creates nothing."""
    license = LicenseFactory()
    response = admin_client.post(
        _url(License, "add"), {"customer": license.customer.pk, "tier": "core", "feature_overrides": "{}"}
    )
    assert response.status_code == 200
    assert services.ALREADY_LICENSED in response.content.decode()
    assert License.objects.filter(customer=license.customer).count() == 1


def test_change_tier_in_admin_and_refused_downgrade(admin_client):
    """The change form moves the tier through the service and shows the downgrade refusal as a form error."""
    customer = CustomerFactory()
    license = services.license_issue(customer=customer, tier="pro").license
    data = {"tier": "enterprise", "feature_overrides": "{}", "notes": "upgraded"}
    response = admin_client.post(_url(License, "change", license.pk), data)
    assert response.status_code == 302
    license.refresh_from_db()
    assert (license.tier, license.monthly_build_quota, license.notes) == ("enterprise", 5000, "upgraded")
    for n in range(2):
        services.credential_add(
            customer=customer, registry_type="quay", registry_url=f"https://q{n}", username="u", secret="s"
        )
    response = admin_client.post(_url(License, "change", license.pk), {**data, "tier": "core"})
    assert response.status_code == 200
    assert "The core tier allows 1 registry credential" in response.content.decode()
    license.refresh_from_db()
    assert license.tier == "enterprise"


def test_license_actions_call_the_services(admin_client):
    """Suspend, reinstate, renew and revoke actions change the selected licenses through the services."""
    license = services.license_issue(
        customer=CustomerFactory(), tier="pro", expires_at=timezone.now() + dt.timedelta(days=5)
    ).license
    changelist = _url(License, "changelist")
    for action, status in [
        ("suspend", "suspended"),
        ("reinstate", "active"),
        ("renew", "active"),
        ("revoke", "revoked"),
    ]:
        admin_client.post(changelist, {"action": action, "_selected_action": [license.pk]})
        license.refresh_from_db()
        assert license.status == status, action
    assert license.expires_at > timezone.now() + dt.timedelta(days=360)


def test_license_action_refusal_is_reported(admin_client):
    """A refused action (reinstating while another license is usable) is reported, not a server error."""
    old = services.license_suspend(license=LicenseFactory())
    services.license_issue(customer=old.customer, tier="core")
    response = admin_client.post(
        _url(License, "changelist"), {"action": "reinstate", "_selected_action": [old.pk]}, follow=True
    )
    assert services.ALREADY_LICENSED in response.content.decode()
    old.refresh_from_db()
    assert old.status == "suspended"


def test_add_credential_in_admin_secret_is_write_only(admin_client):
    """A credential added in the admin stores its secret encrypted; the form never renders a secret back."""
    customer = LicenseFactory(tier="pro").customer
    response = admin_client.post(
        _url(RegistryCredential, "add"),
        {
            "customer": customer.pk,
            "registry_type": "dockerhub",
            "registry_url": "https://index.docker.io/v1/",
            "username": "bot",
            "secret": "dckr_pat_abc123",
        },
    )
    assert response.status_code == 302
    credential = RegistryCredential.objects.get(customer=customer)
    assert selectors.credential_secret(credential=credential) == "dckr_pat_abc123"
    page = admin_client.get(_url(RegistryCredential, "change", credential.pk)).content.decode()
    assert "dckr_pat" not in page
    assert re.search(r'<input type="password" name="new_secret"[^>]*>', page)
    assert 'name="new_secret" value' not in page


def test_add_credential_in_admin_validation(admin_client):
    """An empty secret or a registry beyond the license's limit is a form error and stores nothing."""
    customer = LicenseFactory(tier="core").customer
    data = {"customer": customer.pk, "registry_type": "ghcr", "registry_url": "https://ghcr.io", "username": "u"}
    response = admin_client.post(_url(RegistryCredential, "add"), {**data, "secret": "   "})
    assert services.EMPTY_SECRET in response.content.decode()
    admin_client.post(_url(RegistryCredential, "add"), {**data, "secret": "one"})
    response = admin_client.post(_url(RegistryCredential, "add"), {**data, "secret": "two"})
    assert "allows 1 registry credential(s)" in response.content.decode()
    assert RegistryCredential.objects.filter(customer=customer).count() == 1


def test_change_credential_rotates_secret_only_when_given(admin_client):
    """Leaving the new secret empty keeps the old one; typing one replaces it."""
    customer = LicenseFactory().customer
    credential = services.credential_add(
        customer=customer, registry_type="ghcr", registry_url="https://ghcr.io", username="u", secret="old"
    )
    url = _url(RegistryCredential, "change", credential.pk)
    admin_client.post(url, {"registry_url": "https://ghcr.io", "username": "u2", "new_secret": ""})
    credential.refresh_from_db()
    assert (credential.username, selectors.credential_secret(credential=credential)) == ("u2", "old")
    admin_client.post(url, {"registry_url": "https://ghcr.io", "username": "u2", "new_secret": "new"})
    credential.refresh_from_db()
    assert selectors.credential_secret(credential=credential) == "new"


def test_revoke_credentials_action(admin_client):
    """The revoke action revokes the selected credentials."""
    customer = LicenseFactory(tier="enterprise").customer
    credential = services.credential_add(
        customer=customer, registry_type="ghcr", registry_url="https://ghcr.io", username="u", secret="s"
    )
    admin_client.post(_url(RegistryCredential, "changelist"), {"action": "revoke", "_selected_action": [credential.pk]})
    credential.refresh_from_db()
    assert credential.status == "revoked" and credential.revoked_at


def test_admin_changes_are_attributed_to_the_user(admin_client, admin_user):
    """The audit trail records the admin user (and the URL) for a change made in the admin."""
    license = LicenseFactory()
    admin_client.post(_url(License, "changelist"), {"action": "suspend", "_selected_action": [license.pk]})
    event = LicenseEvent.objects.filter(pgh_obj_id=license.pk, status="suspended").get()
    assert event.pgh_context.metadata["user"] == admin_user.pk
    assert event.pgh_context.metadata["url"] == _url(License, "changelist")


def test_change_pages_show_the_audit_trail_with_who(admin_client, admin_user):
    """License, credential and customer pages list their history with the admin user or command behind it."""
    license = LicenseFactory(tier="enterprise")
    credential = services.credential_add(
        customer=license.customer, registry_type="ghcr", registry_url="https://ghcr.io", username="u", secret="s"
    )
    admin_client.post(_url(License, "changelist"), {"action": "suspend", "_selected_action": [license.pk]})
    admin_client.post(_url(RegistryCredential, "changelist"), {"action": "revoke", "_selected_action": [credential.pk]})
    page = admin_client.get(_url(License, "change", license.pk)).content.decode()
    assert f"user {admin_user.username}" in page and "status=suspended" in page
    page = admin_client.get(_url(RegistryCredential, "change", credential.pk)).content.decode()
    assert f"user {admin_user.username}" in page and "status=revoked" in page
    assert "audit trail" in admin_client.get(_url(Customer, "change", license.customer.pk)).content.decode().lower()


def test_admin_never_deletes_rows(admin_client):
    """Customers, licenses and credentials are retired through actions, not deleted: no delete page or action."""
    license = LicenseFactory()
    assert admin_client.get(_url(License, "delete", license.pk)).status_code == 403
    assert admin_client.get(_url(Customer, "delete", license.customer.pk)).status_code == 403
    assert "delete_selected" not in admin_client.get(_url(License, "changelist")).content.decode()
    assert License.objects.filter(pk=license.pk).exists()


def test_customer_list_shows_the_usable_license_tier(admin_client, django_assert_max_num_queries):
    """The customer list shows each customer's usable license tier, or none, in a bounded number of queries."""
    LicenseFactory(tier="asp", customer__name="Has Asp")
    services.license_suspend(license=LicenseFactory(tier="pro", customer__name="Suspended Pro"))
    with django_assert_max_num_queries(10):
        page = admin_client.get(_url(Customer, "changelist")).content.decode()
    assert re.search(r"Has Asp.*?<td class=\"field-usable_license\">asp</td>", page, re.S)
    assert re.search(r"Suspended Pro.*?<td class=\"field-usable_license\">none</td>", page, re.S)


def _spy(monkeypatch, name):
    """Record the calls of ``services.<name>`` (the real service still runs)."""
    calls, real = [], getattr(services, name)

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(services, name, spy)
    return calls


def test_admin_edits_go_through_the_services_with_their_audit_rows(admin_client, admin_user, monkeypatch):
    """Changing a customer, a license's notes and a credential's login in the admin calls the services; each change
    leaves its audit row (pghistory, attributed to the admin user) and its admin log entry, as before."""
    from django.contrib.admin.models import LogEntry

    from licensing.models import CustomerEvent, RegistryCredentialEvent

    calls = {name: _spy(monkeypatch, name) for name in ("customer_save", "license_set_notes", "credential_update")}
    license = LicenseFactory(tier="enterprise")
    customer = license.customer
    credential = services.credential_add(
        customer=customer, registry_type="ghcr", registry_url="https://ghcr.io", username="u", secret="s"
    )
    inlines = {
        f"{prefix}-{field}": "0"
        for prefix in ("licenses", "registry_credentials")
        for field in ("TOTAL_FORMS", "INITIAL_FORMS")
    }
    customer = CustomerFactory()  # no inline rows to post
    response = admin_client.post(
        _url(Customer, "change", customer.pk),
        {"name": "Renamed Co", "contact_name": "", "contact_email": "", "metadata": "{}", "parent": "", **inlines},
    )
    assert response.status_code == 302
    admin_client.post(
        _url(License, "change", license.pk),
        {"tier": license.tier, "notes": "called them", "feature_overrides": "{}"},
    )
    admin_client.post(
        _url(RegistryCredential, "change", credential.pk),
        {"registry_url": "https://ghcr.io/org", "username": "u2", "new_secret": ""},
    )
    assert [len(calls[name]) for name in calls] == [1, 1, 1]
    customer.refresh_from_db(), license.refresh_from_db(), credential.refresh_from_db()
    assert (customer.name, license.notes, credential.username) == ("Renamed Co", "called them", "u2")
    customer_event = CustomerEvent.objects.filter(pgh_obj_id=customer.pk, name="Renamed Co").get()
    assert customer_event.pgh_context.metadata["user"] == admin_user.pk
    credential_event = RegistryCredentialEvent.objects.filter(pgh_obj_id=credential.pk, username="u2").get()
    assert credential_event.pgh_context.metadata["user"] == admin_user.pk
    assert LicenseEvent.objects.filter(pgh_obj_id=license.pk, notes="called them").exists()
    assert LogEntry.objects.filter(object_id__in=[str(customer.pk), str(license.pk), str(credential.pk)]).count() == 3


def test_the_admins_services_refuse_bad_input_and_change_nothing():
    """The services the admin calls check what the database would, with messages a person understands."""
    license = LicenseFactory(tier="enterprise")
    customer = license.customer
    credential = services.credential_add(
        customer=customer, registry_type="ghcr", registry_url="https://ghcr.io", username="u", secret="s"
    )
    with pytest.raises(services.LicensingError, match="The username must not be empty"):
        services.credential_update(credential=credential, registry_url="https://ghcr.io", username="  ")
    customer.name = " "
    with pytest.raises(services.LicensingError, match="The name must not be empty"):
        services.customer_save(customer=customer)
    customer.refresh_from_db()
    customer.parent = customer
    with pytest.raises(ValidationError, match="own parent"):
        services.customer_save(customer=customer)
    with pytest.raises(services.LicensingError, match="notes must be text"):
        services.license_set_notes(license=license, notes=None)
    credential.refresh_from_db(), customer.refresh_from_db(), license.refresh_from_db()
    assert (credential.username, customer.parent_id, license.notes) == ("u", None, "")
