"""enqueue_build and build_enqueue: license and quota checks, duplicate manifests, cache hits, events, notify."""

import datetime as dt
import json
import re
import uuid

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build, BuildEvent, BuildResult
from builds.queue import services
from tests.builds.factories import BuildFactory
from tests.conftest import database_url
from tests.licensing.factories import CustomerFactory, LicenseFactory

DIGEST = "sha256:" + "b" * 64


def _manifest():
    return {"base": "python:3.12-slim", "packages": ["flask", uuid.uuid4().hex]}


@pytest.mark.django_db
def test_enqueue_queues_a_build_with_an_event_and_the_canonical_hash():
    """A new manifest becomes a queued build under the customer's license, with its hash and an 'enqueued' event."""
    license = LicenseFactory(tier="pro")
    build = services.build_enqueue(customer=license.customer, manifest=_manifest(), priority=7, source="intake")
    assert (build.status, build.priority, build.license_id, build.source) == ("queued", 7, license.pk, "intake")
    with connection.cursor() as cursor:
        cursor.execute("SELECT manifest_hash(%s::jsonb)", [json.dumps(build.manifest)])
        assert cursor.fetchone()[0] == build.manifest_hash
    event = BuildEvent.objects.get(build_id=build.pk)
    assert (event.event_type, event.to_status, event.data) == (
        "enqueued",
        "queued",
        {"priority": 7, "source": "intake"},
    )


@pytest.mark.django_db
def test_builds_enqueued_in_one_transaction_are_claimed_fifo():
    """created_at is the clock, not the transaction start: builds enqueued together keep their order."""
    license = LicenseFactory(tier="asp")
    ids = [services.build_enqueue(customer=license.customer, manifest=_manifest()).pk for _ in range(5)]
    assert [services.build_claim(worker_id=f"w{i}").pk for i in range(5)] == ids


@pytest.mark.django_db
def test_a_duplicate_manifest_returns_the_live_build():
    """The same manifest (keys in another order) while queued or running returns that build, using no quota."""
    license = LicenseFactory(tier="core", monthly_build_quota_override=1)
    first = services.build_enqueue(customer=license.customer, manifest={"base": "alpine", "run": ["a", "b"]})
    again = services.build_enqueue(customer=license.customer, manifest={"run": ["a", "b"], "base": "alpine"})
    assert again.pk == first.pk
    services.build_claim(worker_id="w1")
    assert services.build_enqueue(customer=license.customer, manifest={"base": "alpine", "run": ["a", "b"]}) == first
    assert Build.objects.count() == 1


@pytest.mark.django_db
def test_the_same_manifest_of_another_customer_is_a_separate_build():
    """Deduplication is per customer."""
    manifest = _manifest()
    a = services.build_enqueue(customer=LicenseFactory().customer, manifest=manifest)
    b = services.build_enqueue(customer=LicenseFactory().customer, manifest=manifest)
    assert a.pk != b.pk


@pytest.mark.django_db
def test_a_cached_manifest_returns_a_new_succeeded_build_from_the_cache():
    """After a success, the same manifest is served from the cache: succeeded, cache_hit, no worker, no quota."""
    license = LicenseFactory(tier="core", monthly_build_quota_override=1)
    manifest = _manifest()
    first = services.build_enqueue(customer=license.customer, manifest=manifest)
    services.build_claim(worker_id="w1")
    assert services.build_complete(
        build=first, worker_id="w1", succeeded=True, image_reference="registry.example/app:1", image_digest=DIGEST
    )
    hit = services.build_enqueue(customer=license.customer, manifest=manifest)
    assert hit.pk != first.pk
    assert (hit.status, hit.cache_hit, hit.worker_id, hit.image_digest) == ("succeeded", True, None, DIGEST)
    assert hit.cache_entry_id is not None
    assert BuildResult.objects.get(build=hit).status == "succeeded"
    assert list(BuildEvent.objects.filter(build_id=hit.pk).values_list("event_type", flat=True)) == ["cache_hit"]
    assert services.build_claim(worker_id="w2") is None


@pytest.mark.django_db
def test_enqueue_over_the_monthly_quota_is_refused():
    """With the quota used up the enqueue raises QuotaExceeded naming the license, and queues nothing."""
    license = LicenseFactory(tier="core", monthly_build_quota_override=2)
    for _ in range(2):
        services.build_enqueue(customer=license.customer, manifest=_manifest())
    with pytest.raises(services.QuotaExceeded, match=f"monthly build quota of license {license.pk} is used up"):
        services.build_enqueue(customer=license.customer, manifest=_manifest())
    assert Build.objects.count() == 2


@pytest.mark.django_db
def test_service_errors_for_unusable_licenses_and_bad_input():
    """The service raises the app's exceptions with messages a person understands."""
    with pytest.raises(services.LicenseUnusable, match="has no license"):
        services.build_enqueue(customer=CustomerFactory(), manifest=_manifest())
    expired = LicenseFactory(
        starts_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), expires_at=dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(services.LicenseUnusable, match="has expired"):
        services.build_enqueue(customer=expired.customer, manifest=_manifest())
    license = LicenseFactory()
    for priority in (0, 11, None, True):
        with pytest.raises(services.BuildInputError, match=re.escape(services.PRIORITY_RANGE)):
            services.build_enqueue(customer=license.customer, manifest=_manifest(), priority=priority)
    with pytest.raises(services.BuildInputError, match=services.MANIFEST_NOT_OBJECT):
        services.build_enqueue(customer=license.customer, manifest=["not", "an", "object"])
    with pytest.raises(services.BuildNotFound, match="does not exist"):
        services.build_enqueue(customer=uuid.uuid4(), manifest=_manifest())
    assert not Build.objects.exists()


@pytest.mark.django_db
def test_service_progress_and_complete_validate_and_translate():
    """Progress out of range, an empty worker id and an unknown build are the app's errors; false is returned."""
    build = BuildFactory()
    with pytest.raises(services.BuildInputError, match=services.PROGRESS_RANGE):
        services.build_update_progress(build=build, worker_id="w", progress=101)
    with pytest.raises(services.BuildInputError, match=services.WORKER_ID_EMPTY):
        services.build_claim(worker_id=" ")
    with pytest.raises(services.BuildNotFound):
        services.build_update_progress(build=uuid.uuid4(), worker_id="w", progress=1)
    with pytest.raises(services.BuildInputError, match=services.SUCCESS_NEEDS_IMAGE):
        services.build_complete(build=build, worker_id="w", succeeded=True)
    assert services.build_update_progress(build=build, worker_id="w", progress=1) is False
    with pytest.raises(services.BuildStateError, match=services.NOT_RETRYABLE):
        services.build_retry(build=build)


@pytest.mark.django_db
def test_artifacts_and_metrics_are_attached_and_validated():
    """An artifact needs a known kind and a sha256 digest; metrics need a name and a number; only the worker
    holding the running build may add them."""
    build = BuildFactory(status="running", worker_id="w", started_at=timezone.now())
    artifact = services.build_artifact_attach(
        build=build,
        worker_id="w",
        kind="sbom",
        uri="s3://b/sbom.json",
        media_type="application/spdx+json",
        size_bytes=10,
        digest="sha256:" + "c" * 64,
    )
    assert artifact.build_id == build.pk and artifact.sha256 == "c" * 64
    with pytest.raises(services.InvalidBuildOutput, match="artifact kind"):
        services.build_artifact_attach(
            build=build, worker_id="w", kind="zip", uri="x", media_type="a/b", size_bytes=1, digest="sha256:" + "c" * 64
        )
    with pytest.raises(services.BuildInputError, match="digest"):
        services.build_artifact_attach(
            build=build, worker_id="w", kind="log", uri="x", media_type="a/b", size_bytes=1, digest="XYZ"
        )
    metric = services.build_metric_record(build=build, worker_id="w", name="layer_bytes", value=123, unit="bytes")
    assert metric.value == 123.0
    with pytest.raises(services.BuildInputError, match="metric name"):
        services.build_metric_record(build=build, worker_id="w", name="", value=1)
    with pytest.raises(services.BuildNotHeld):
        services.build_metric_record(build=build, worker_id="other", name="layer_bytes", value=1)


@pytest.mark.django_db(transaction=True)
def test_enqueue_notifies_listening_workers_at_commit():
    """enqueue_build sends {"event": "enqueued", build, license, priority} on build_queue, delivered at commit."""
    license = LicenseFactory()
    with psycopg.connect(database_url(), autocommit=True) as listener:
        listener.execute("LISTEN build_queue")
        build = services.build_enqueue(customer=license.customer, manifest=_manifest())
        notices = list(listener.notifies(timeout=5, stop_after=1))
    assert [n.channel for n in notices] == ["build_queue"]
    assert json.loads(notices[0].payload) == {
        "event": "enqueued",
        "build": str(build.pk),
        "license": str(license.pk),
        "priority": 5,
    }
