"""The operators and admins roles: what each may reach, enforced on the server (actions, pages, JSON)."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from builds.models import Build
from console.roles import ADMINS, OPERATORS, sync_roles
from tests.console.conftest import make_user
from tests.console.factories import BuildFactory
from tests.licensing.factories import LicenseFactory

SECRET = "CIPHERTEXT-must-never-be-shown"


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
def test_staff_without_the_cancel_permission_cannot_run_the_action(client):
    """A staff user who may only view builds gets no cancel action; posting it changes nothing."""
    viewer = make_user("vic-viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_build"))
    client.force_login(viewer)
    build = BuildFactory()
    client.post(
        reverse("admin:builds_build_changelist"), {"action": "cancel_builds", "_selected_action": [str(build.pk)]}
    )
    build.refresh_from_db()
    assert build.status == Build.Status.QUEUED


@pytest.mark.django_db
def test_operator_holds_the_retry_and_reprioritise_permissions(operator):
    """Operators may retry and change the priority of builds (the queue actions check these permissions)."""
    assert operator.has_perms(["builds.cancel_build", "builds.retry_build", "builds.reprioritize_build"])
    assert not operator.has_perm("builds.change_build")


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
    """Ciphertexts of license keys stay out of every license page an operator reaches, and users are off limits."""
    license = LicenseFactory(license_key_encrypted=SECRET)
    pages = [
        reverse("admin:licensing_license_changelist"),
        reverse("admin:licensing_license_change", args=[license.pk]),
        reverse("admin:licensing_customer_change", args=[license.customer.pk]),
        reverse("admin:console_dashboard"),
    ]
    for url in pages:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        assert SECRET.encode() not in response.content, url
        assert license.license_key_index.encode() not in response.content, url
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
