"""The build queue admin: list and filters in few queries, the timeline, and permission-gated actions that
filter to the builds they apply to and are recorded in the admin log."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse

from builds.models import Build
from tests.builds.factories import BuildFactory
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:builds_build_changelist"


def _staff_client(client, *perms):
    user = get_user_model().objects.create_user("op", "op@example.com", "pw-Secret-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="builds", codename__in=perms))
    client.force_login(user)
    return client


def _claim(worker="w1"):
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM get_next_build_for_worker(%s)", [worker])


def _act(client, action, ids, **extra):
    return client.post(
        reverse(CHANGELIST), {"action": action, "_selected_action": [str(i) for i in ids], **extra}, follow=True
    )


def test_changelist_shows_progress_and_filters_in_few_queries(admin_client, django_assert_max_num_queries):
    """The queue lists builds with status badges and progress bars, filters by status/priority/tier, in few
    queries however many builds are shown."""
    pro, core = LicenseFactory(tier="pro"), LicenseFactory(tier="core")
    for i in range(20):
        BuildFactory(license=pro if i % 2 else core, priority=1 + i % 10)
    _claim()
    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    content = response.content.decode()
    assert "progress" in content and "Running" in content

    def listed(query):
        return {b.pk for b in admin_client.get(reverse(CHANGELIST) + query).context["cl"].result_list}

    assert len(listed("?status__exact=running")) == 1
    assert listed("?priority__exact=10") == set(Build.objects.filter(priority=10).values_list("pk", flat=True))
    assert listed("?license__tier__exact=core") == set(Build.objects.filter(license=core).values_list("pk", flat=True))


def test_change_page_shows_the_timeline(admin_client):
    """A build's page shows its events (claimed, stage, failed) and its result."""
    build = BuildFactory()
    _claim("w9")
    with connection.cursor() as cursor:
        cursor.execute("SELECT update_build_progress(%s, 'w9', 30, 'compile')", [build.pk])
        cursor.execute("SELECT complete_build(%s, 'w9', false, NULL, NULL, 'linker error')", [build.pk])
    response = admin_client.get(reverse("admin:builds_build_change", args=[build.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    for text in ("event: claimed", "event: stage", "event: failed", "result: failed", "linker error", "w9"):
        assert text in content


def test_cancel_action_applies_to_live_builds_only_and_is_logged(admin_client):
    """Cancel cancels queued builds, marks running ones, skips finished ones, and logs each change."""
    license = LicenseFactory(tier="asp")
    running, queued, done = (BuildFactory(license=license) for _ in range(3))
    _claim()
    Build.objects.filter(pk=done.pk).update(status="failed")
    response = _act(admin_client, "cancel_builds", [running.pk, queued.pk, done.pk])
    assert "2 build(s) cancelled or marked for cancellation. 1 skipped" in response.content.decode()
    assert Build.objects.get(pk=queued.pk).status == "cancelled"
    assert Build.objects.get(pk=running.pk).cancel_requested
    assert Build.objects.get(pk=done.pk).status == "failed"
    logged = set(LogEntry.objects.values_list("object_id", "change_message"))
    assert (str(queued.pk), "Cancel: cancelled.") in logged
    assert (str(running.pk), "Cancel: cancel_requested.") in logged


def test_retry_action_requeues_failed_builds_only(admin_client):
    """Retry requeues failed/timed-out/cancelled builds and leaves queued ones alone."""
    failed, queued = BuildFactory(), BuildFactory()
    Build.objects.filter(pk=failed.pk).update(status="failed", finished_at=failed.created_at)
    response = _act(admin_client, "retry_builds", [failed.pk, queued.pk])
    assert "1 build(s) queued again. 1 skipped" in response.content.decode()
    assert Build.objects.get(pk=failed.pk).status == "queued"
    assert LogEntry.objects.filter(object_id=str(failed.pk), change_message="Retry: queued again.").exists()


def test_change_priority_action_sets_the_priority_of_queued_builds(admin_client):
    """Change priority applies the chosen priority to queued builds; without a valid one it changes nothing."""
    queued = BuildFactory(priority=5)
    # One tenant, so its own priorities decide which build the claim takes (across tenants the fair share does).
    running = BuildFactory(priority=5, license=queued.license)
    Build.objects.filter(pk=running.pk).update(priority=6)
    _claim()
    response = _act(admin_client, "change_priority", [queued.pk, running.pk], priority="9")
    assert "1 build(s) set to priority 9. 1 skipped" in response.content.decode()
    assert Build.objects.get(pk=queued.pk).priority == 9
    assert Build.objects.get(pk=running.pk).priority == 6
    assert LogEntry.objects.filter(object_id=str(queued.pk), change_message="Priority: 5 → 9.").exists()
    response = _act(admin_client, "change_priority", [queued.pk], priority="11")
    assert "Choose a priority from 1 to 10" in response.content.decode()
    assert Build.objects.get(pk=queued.pk).priority == 9


def test_actions_need_their_custom_permissions(client):
    """A staff user with only view permission sees no actions; with cancel_build they can cancel but not retry."""
    build = BuildFactory()
    staff = _staff_client(client, "view_build")
    assert staff.get(reverse(CHANGELIST)).context["action_form"] is None  # no action offered at all
    user = get_user_model().objects.get(username="op")
    user.user_permissions.add(Permission.objects.get(codename="cancel_build"))
    staff.force_login(user)
    actions = staff.get(reverse(CHANGELIST)).context["action_form"].fields["action"].choices
    assert [name for name, _ in actions if name] == ["cancel_builds"]
    _act(staff, "retry_builds", [build.pk])
    assert Build.objects.get(pk=build.pk).status == "queued"


def test_the_admin_cannot_add_edit_or_delete_builds(admin_client):
    """Builds enter through enqueue_build and change through actions: no add, edit or delete in the admin."""
    build = BuildFactory()
    assert admin_client.get(reverse("admin:builds_build_add")).status_code == 403
    assert admin_client.post(reverse("admin:builds_build_delete", args=[build.pk])).status_code == 403
