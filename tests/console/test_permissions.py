"""The operators and admins roles: what each may reach, enforced on the server (actions, pages, JSON)."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from builds.models import Build
from console.roles import ADMINS, OPERATORS, sync_roles
from tests.console.conftest import make_user
from tests.console.factories import BuildFactory
from tests.licensing.factories import LicenseFactory, RegistryCredentialFactory


def _codenames(group_name: str) -> set[str]:
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


@pytest.mark.django_db
def test_migration_creates_operators_with_view_and_queue_actions_only():
    """operators hold view permissions and the three queue actions, and no add, change or delete."""
    codenames = _codenames(OPERATORS)
    assert {"cancel_build", "retry_build", "reprioritize_build", "view_build", "view_license"} <= codenames
    assert "view_logentry" in codenames
    assert not {c for c in codenames if c.startswith(("add_", "change_", "delete_"))}
    assert "view_user" not in codenames  # password hashes are secrets too


@pytest.mark.django_db
def test_migration_creates_admins_with_every_permission():
    """admins hold every permission there is."""
    assert _codenames(ADMINS) == set(Permission.objects.values_list("codename", flat=True))


@pytest.mark.django_db
def test_sync_roles_takes_back_a_permission_granted_to_operators_by_hand():
    """The rule is the contract: re-syncing removes a delete permission added to operators by hand."""
    Group.objects.get(name=OPERATORS).permissions.add(Permission.objects.get(codename="delete_license"))
    sync_roles(group_model=Group, permission_model=Permission)
    assert "delete_license" not in _codenames(OPERATORS)


@pytest.mark.django_db
def test_operator_cancels_a_queued_build_through_the_admin_action_and_it_is_audited(operator_client, operator):
    """The cancel action works for an operator, changes only queued builds, and writes the admin log."""
    queued = BuildFactory()
    running = BuildFactory(running=True)
    response = operator_client.post(
        reverse("admin:builds_build_changelist"),
        {"action": "cancel_builds", "_selected_action": [str(queued.pk), str(running.pk)]},
    )
    assert response.status_code == 302
    queued.refresh_from_db()
    running.refresh_from_db()
    assert (queued.status, running.status) == (Build.Status.CANCELLED, Build.Status.RUNNING)
    entry = LogEntry.objects.get(object_id=str(queued.pk))
    assert (entry.user_id, entry.action_flag) == (operator.pk, CHANGE)


@pytest.mark.django_db
def test_operator_retries_a_failed_build_through_the_admin_action(operator_client, operator):
    """The retry action queues a failed build again for an operator, and writes the admin log."""
    failed = BuildFactory(status=Build.Status.FAILED)
    response = operator_client.post(
        reverse("admin:builds_build_changelist"), {"action": "retry_builds", "_selected_action": [str(failed.pk)]}
    )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == Build.Status.QUEUED
    assert LogEntry.objects.filter(object_id=str(failed.pk), user=operator).exists()


@pytest.mark.django_db
def test_operator_changes_the_priority_of_a_queued_build_through_the_admin_action(operator_client, operator):
    """The change-priority action sets a queued build's priority for an operator, and writes the admin log."""
    build = BuildFactory(priority=3)
    response = operator_client.post(
        reverse("admin:builds_build_changelist"),
        {"action": "change_priority", "priority": "9", "_selected_action": [str(build.pk)]},
    )
    assert response.status_code == 302
    build.refresh_from_db()
    assert build.priority == 9
    assert LogEntry.objects.filter(object_id=str(build.pk), user=operator).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "status", "extra"),
    [("cancel_builds", "queued", {}), ("retry_builds", "failed", {}), ("change_priority", "queued", {"priority": "9"})],
)
def test_staff_without_the_action_permission_changes_nothing(client, action, status, extra):
    """A staff user who may only view builds cannot run a queue action: posting it changes nothing."""
    viewer = make_user("vic-viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_build"))
    client.force_login(viewer)
    build = BuildFactory(status=status, priority=3)
    client.post(
        reverse("admin:builds_build_changelist"), {"action": action, "_selected_action": [str(build.pk)], **extra}
    )
    build.refresh_from_db()
    assert (build.status, build.priority) == (status, 3)
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_operator_cannot_change_or_delete_a_license(operator_client):
    """The license change form is read-only for an operator: posting it and deleting are refused."""
    license = LicenseFactory(notes="original")
    change_url = reverse("admin:licensing_license_change", args=[license.pk])
    page = operator_client.get(change_url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert operator_client.post(change_url, {"notes": "changed"}).status_code == 403
    assert operator_client.get(reverse("admin:licensing_license_delete", args=[license.pk])).status_code == 403
    assert (
        operator_client.post(reverse("admin:licensing_license_delete", args=[license.pk]), {"post": "yes"}).status_code
        == 403
    )
    license.refresh_from_db()
    assert license.notes == "original"


@pytest.mark.django_db
def test_operator_cannot_delete_a_build(operator_client):
    """An operator has no delete: the delete page is refused and the bulk delete action is not offered."""
    build = BuildFactory()
    assert operator_client.get(reverse("admin:builds_build_delete", args=[build.pk])).status_code == 403
    operator_client.post(
        reverse("admin:builds_build_changelist"), {"action": "delete_selected", "_selected_action": [str(build.pk)]}
    )
    assert Build.objects.filter(pk=build.pk).exists()


@pytest.mark.django_db
def test_operator_never_sees_a_secret(operator_client):
    """License keys and registry secrets, in clear or encrypted, appear on no page an operator reaches; the user
    list (password hashes) is off limits."""
    key = "HONUA-CONSOLE-TEST-KEY-0123456789"
    license = LicenseFactory(key=key)
    credential = RegistryCredentialFactory(customer=license.customer, secret="registry-secret-console-test")
    pages = [
        reverse("admin:licensing_license_changelist"),
        reverse("admin:licensing_license_change", args=[license.pk]),
        reverse("admin:licensing_customer_change", args=[license.customer.pk]),
        reverse("admin:licensing_registrycredential_changelist"),
        reverse("admin:licensing_registrycredential_change", args=[credential.pk]),
        reverse("admin:licensing_licenseevent_changelist"),
        reverse("admin:licensing_registrycredentialevent_changelist"),
        reverse("admin:admin_logentry_changelist"),
        reverse("admin:console_dashboard"),
    ]
    secrets = [key, license.license_key_encrypted, "registry-secret-console-test", credential.secret_encrypted]
    for url in pages:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        for secret in secrets:
            assert secret.encode() not in response.content, url
    assert operator_client.get(reverse("admin:auth_user_changelist")).status_code == 403


@pytest.mark.django_db
def test_admins_group_may_delete_and_change_licenses(admin_user_in_group):
    """A member of admins holds change and delete on licenses."""
    assert admin_user_in_group.has_perms(["licensing.change_license", "licensing.delete_license"])


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "not staff", "staff without view_build"])
def test_live_endpoint_gives_nothing_to_those_not_allowed(client, who):
    """Anonymous users, non-staff users (even with permissions) and staff who may not view builds get a 403
    with no data from the JSON endpoint."""
    BuildFactory(running=True)
    if who != "anonymous":
        user = make_user("someone", staff=who != "not staff")
        if who == "not staff":
            user.user_permissions.add(Permission.objects.get(codename="view_build"))
        client.force_login(user)
    response = client.get(reverse("admin:console_live"))
    assert response.status_code == 403
    assert set(response.json()) == {"error"}


@pytest.mark.django_db
def test_live_endpoint_serves_an_operator(operator_client):
    """An operator gets queue depth and the running builds, without caching."""
    build = BuildFactory(running=True)
    response = operator_client.get(reverse("admin:console_live"))
    assert response.status_code == 200
    data = response.json()
    assert data["queue"]["running"] == 1
    assert [row["id"] for row in data["running"]] == [str(build.pk)]
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_non_staff_user_cannot_open_the_dashboard(client):
    """The dashboard is inside the admin: a non-staff user is sent to the login page."""
    client.force_login(make_user("nora", staff=False))
    response = client.get(reverse("admin:console_dashboard"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.mark.django_db
def test_operator_cannot_run_the_license_actions(operator_client):
    """Suspending or revoking a license needs the change permission: an operator's post changes nothing."""
    license = LicenseFactory()
    for action in ["suspend", "revoke"]:
        operator_client.post(
            reverse("admin:licensing_license_changelist"), {"action": action, "_selected_action": [str(license.pk)]}
        )
    license.refresh_from_db()
    assert license.status == "active"
    assert not LogEntry.objects.exists()
