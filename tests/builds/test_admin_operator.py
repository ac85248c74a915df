"""The build admin as an operator uses it: build numbers, search by what an operator knows, the build page's
attempts, artifacts and metrics, and its Cancel / Retry / Priority buttons behind a confirmation."""

import hashlib

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse

from builds.models import Build
from builds.queue import services
from tests.builds.factories import BuildFactory
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:builds_build_changelist"


def _listed(client, query: str) -> set:
    return {b.pk for b in client.get(reverse(CHANGELIST) + query).context["cl"].result_list}


def _fail(build: Build, error: str, log: str = "", outputs=None) -> None:
    """Claim ``build`` as worker w-fail, send its log (append_build_log) and ``outputs(build)``, then fail it."""
    Build.objects.filter(pk=build.pk).update(priority=10)  # the one claimed next
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM get_next_build_for_worker('w-fail')")
        if log:
            cursor.execute("SELECT append_build_log(%s, 'w-fail', %s)", [build.pk, log])
        if outputs:
            outputs(build)
        cursor.execute("SELECT complete_build(%s, 'w-fail', false, NULL, NULL, %s)", [build.pk, error])


def test_builds_have_distinct_numbers_shown_and_searchable(admin_client):
    """Every build gets its own number from the sequence; the list shows #N and searching #N or N finds it."""
    builds = [BuildFactory() for _ in range(3)]
    numbers = [Build.objects.get(pk=b.pk).build_number for b in builds]
    assert len(set(numbers)) == 3 and numbers == sorted(numbers)
    content = admin_client.get(reverse(CHANGELIST)).content.decode()
    for number in numbers:
        assert f"#{number}" in content
    assert _listed(admin_client, f"?q=%23{numbers[1]}") == {builds[1].pk}
    assert _listed(admin_client, f"?q={numbers[2]}") == {builds[2].pk}
    assert str(Build.objects.get(pk=builds[0].pk)) == f"build #{numbers[0]} (queued)"


def test_search_finds_builds_by_manifest_and_error_text(admin_client):
    """Search finds a build by its base image, by one of its packages, and by words of its error."""
    license = LicenseFactory(tier="asp")
    gdal = BuildFactory(license=license, manifest={"base_image": "osgeo/gdal:3.9", "packages": ["gdal", "numpy"]})
    other = BuildFactory(license=license, manifest={"base": "node:22-alpine", "packages": ["express"]})
    failing = BuildFactory(license=license)
    _fail(failing, "apt-get: unable to locate package libfoo-dev")
    assert _listed(admin_client, "?q=osgeo/gdal:3.9") == {gdal.pk}
    assert _listed(admin_client, "?q=numpy") == {gdal.pk}
    assert _listed(admin_client, "?q=node:22-alpine") == {other.pk}
    assert _listed(admin_client, "?q=locate+package") == {failing.pk}
    assert _listed(admin_client, "?q=libfoo-dev") == {failing.pk}
    assert _listed(admin_client, "?q=nothing-like-this") == set()


def test_error_search_uses_its_index():
    """The error-text search is answered from build_queue_error_fts, not by reading every build."""
    from builds.queue.selectors import builds_search

    queryset = builds_search(queryset=Build.objects.all(), term="locate")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "build_queue_error_fts" in plan


def test_bulk_actions_on_a_filtered_list_report_no_negative_skips(admin_client):
    """Cancel on ?status__exact=queued and retry on ?status__exact=failed report what they did, never "-1"."""
    license = LicenseFactory(tier="asp")
    queued = [BuildFactory(license=license) for _ in range(2)]
    url = reverse(CHANGELIST) + "?status__exact=queued"
    response = admin_client.post(
        url, {"action": "cancel_builds", "_selected_action": [str(b.pk) for b in queued]}, follow=True
    )
    content = response.content.decode()
    assert "2 build(s) cancelled or marked for cancellation." in content
    assert "skipped" not in content
    url = reverse(CHANGELIST) + "?status__exact=cancelled"
    response = admin_client.post(
        url, {"action": "retry_builds", "_selected_action": [str(b.pk) for b in queued]}, follow=True
    )
    content = response.content.decode()
    assert "2 build(s) queued again." in content and "skipped" not in content


def test_build_page_shows_attempts_with_error_and_log_tail_artifacts_and_metrics(admin_client):
    """The build page shows each attempt's error and only the last lines of its log, artifacts with their
    checksums, and metrics."""
    build = BuildFactory()  # a pro license: entitled to an SBOM
    log = "\n".join(f"step {i}" for i in range(1, 101)) + "\n"
    checksum = hashlib.sha256(b"sbom").hexdigest()

    def outputs(build):
        services.build_artifact_attach(
            build=build,
            worker_id="w-fail",
            kind="sbom",
            uri="oci://r/app.sbom",
            media_type="application/spdx+json",
            size_bytes=1234,
            digest=f"sha256:{checksum}",
        )
        services.build_metric_record(build=build, worker_id="w-fail", name="cpu_seconds", value=12.5, unit="s")

    _fail(build, "linker error: undefined symbol", log, outputs)
    content = admin_client.get(reverse("admin:builds_build_change", args=[build.pk])).content.decode()
    assert "linker error: undefined symbol" in content
    assert "step 100" in content and "step 61" in content
    assert "step 60\n" not in content and "step 1\n" not in content
    assert f"sha256:{checksum}" in content and "1,234 bytes" in content
    assert "cpu_seconds" in content and "12.5" in content
    assert "BuildResult object" not in content and "BuildArtifact object" not in content


def test_build_page_retry_button_confirms_then_retries_and_logs(admin_client):
    """Retry on the build page: the confirmation page changes nothing; confirming queues the build again through
    the service and writes the admin log entry the list action writes."""
    build = BuildFactory()
    _fail(build, "boom")
    page = reverse("admin:builds_build_change", args=[build.pk])
    content = admin_client.get(page).content.decode()
    confirm = reverse("admin:builds_build_operation", args=[build.pk, "retry"])
    assert confirm in content
    assert 'data-operation="cancel"' not in content  # a failed build cannot be cancelled
    assert admin_client.get(confirm).status_code == 200
    assert Build.objects.get(pk=build.pk).status == "failed"
    response = admin_client.post(confirm, follow=True)
    assert response.redirect_chain[-1][0] == page
    assert Build.objects.get(pk=build.pk).status == "queued"
    assert LogEntry.objects.filter(object_id=str(build.pk), change_message="Retry: queued again.").exists()


def test_build_page_priority_and_cancel_buttons(admin_client):
    """Priority (with a valid value) and cancel from the build page apply to a queued build and are logged; a
    bad priority changes nothing."""
    build = BuildFactory(priority=5)
    confirm = reverse("admin:builds_build_operation", args=[build.pk, "priority"])
    response = admin_client.post(confirm, {"priority": "11"}, follow=True)
    assert "Choose a priority from 1 to 10" in response.content.decode()
    assert Build.objects.get(pk=build.pk).priority == 5
    admin_client.post(confirm, {"priority": "8"})
    assert Build.objects.get(pk=build.pk).priority == 8
    admin_client.post(reverse("admin:builds_build_operation", args=[build.pk, "cancel"]))
    assert Build.objects.get(pk=build.pk).status == "cancelled"
    messages = set(LogEntry.objects.filter(object_id=str(build.pk)).values_list("change_message", flat=True))
    assert messages == {"Priority: 5 → 8.", "Cancel: cancelled."}


def test_build_page_buttons_need_the_action_permissions(client):
    """A staff user who may only view builds sees no buttons and gets 403 from the operation's URL."""
    build = BuildFactory()
    user = get_user_model().objects.create_user("viewer", password="pw-Secret-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_build"))
    client.force_login(user)
    content = client.get(reverse("admin:builds_build_change", args=[build.pk])).content.decode()
    assert "build-operation" not in content
    confirm = reverse("admin:builds_build_operation", args=[build.pk, "cancel"])
    assert client.get(confirm).status_code == 403
    assert client.post(confirm).status_code == 403
    assert Build.objects.get(pk=build.pk).status == "queued"
