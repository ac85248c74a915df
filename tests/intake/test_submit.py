"""Submitting an approved manifest goes through the build queue: license, quota, duplicates and the cache."""

import datetime as dt

import pytest
from django.utils import timezone

from builds.models import Build
from builds.queue.services import LicenseUnusable, QuotaExceeded
from intake import services
from intake.models import BuildManifest
from tests.builds.cache_factories import cached
from tests.licensing.factories import CustomerFactory, LicenseFactory


# Licenses start yesterday: starts_at defaults to the statement's time, later than the transaction's now() that
# enqueue_build compares it with, so a license made in the same transaction would not have started yet.
def _license(**fields):
    return LicenseFactory(starts_at=timezone.now() - dt.timedelta(days=1), **fields)


GDAL = "python 3.12 with gdal for arm64 and amd64, push to my ECR"


def _approved(customer, text=GDAL):
    conversation = services.conversation_start(customer=customer, model="claude-sonnet-4")
    message = services.message_add(conversation=conversation, role="user", content=text)
    services.message_extract(message=message)
    draft = services.manifest_generate(conversation=conversation)
    return services.manifest_approve(manifest=draft, approved_by="alice")


@pytest.mark.django_db
def test_submit_queues_a_build_and_records_it():
    """An approved manifest becomes a queued build from the intake, with the same manifest and hash."""
    license = _license()
    manifest = _approved(license.customer)
    submitted = services.manifest_submit(manifest=manifest, priority=7)
    build = submitted.build
    assert (submitted.status, build.status, build.source, build.priority) == ("submitted", "queued", "intake", 7)
    assert build.manifest == manifest.manifest
    assert build.manifest_hash == manifest.manifest_hash
    assert submitted.submitted_at is not None


@pytest.mark.django_db
def test_submitting_a_draft_never_approved_is_refused():
    """A draft cannot be submitted; no build is created and it stays a draft."""
    license = _license()
    draft = _approved(license.customer)
    BuildManifest.objects.filter(pk=draft.pk).update(status="draft", approved_at=None)
    with pytest.raises(services.ManifestStateError, match="is draft: only an approved manifest can be submitted"):
        services.manifest_submit(manifest=draft)
    assert not Build.objects.exists()
    draft.refresh_from_db()
    assert draft.status == "draft"


@pytest.mark.django_db
def test_submitting_twice_returns_the_same_build():
    """A second submit of the same manifest changes nothing and returns the same build."""
    manifest = _approved(_license().customer)
    first = services.manifest_submit(manifest=manifest)
    again = services.manifest_submit(manifest=manifest)
    assert again.build_id == first.build_id
    assert Build.objects.count() == 1


@pytest.mark.django_db
def test_submitted_duplicate_returns_the_same_build():
    """The same manifest from another conversation, while the first build is queued, becomes that build."""
    customer = _license().customer
    first = services.manifest_submit(manifest=_approved(customer))
    second = services.manifest_submit(manifest=_approved(customer, text=GDAL.upper().replace("ECR", "ecr")))
    assert second.manifest_hash == first.manifest_hash
    assert second.build_id == first.build_id
    assert Build.objects.count() == 1


@pytest.mark.django_db
def test_quota_applies_and_a_refused_submit_changes_nothing():
    """With the monthly quota used up the submit is refused, and the manifest stays approved without a build."""
    customer = _license(monthly_build_quota_override=1).customer
    services.manifest_submit(manifest=_approved(customer))
    other = _approved(customer, text="node 20 with git")
    with pytest.raises(QuotaExceeded, match="monthly build quota"):
        services.manifest_submit(manifest=other)
    other.refresh_from_db()
    assert (other.status, other.build_id) == ("approved", None)
    assert Build.objects.count() == 1


@pytest.mark.django_db
def test_customer_without_a_license_cannot_submit():
    """No usable license: the build queue's error, and nothing changes."""
    manifest = _approved(CustomerFactory())
    with pytest.raises(LicenseUnusable):
        services.manifest_submit(manifest=manifest)
    manifest.refresh_from_db()
    assert manifest.status == "approved"


@pytest.mark.django_db
def test_cached_manifest_is_served_from_the_cache():
    """A manifest whose image is in the customer's cache becomes a build already succeeded from the cache."""
    license = _license()
    manifest = _approved(license.customer, text="python 3.12 with gdal")
    entry = cached(license, manifest=manifest.manifest)
    submitted = services.manifest_submit(manifest=manifest)
    assert (submitted.build.status, submitted.build.cache_hit) == ("succeeded", True)
    assert submitted.build.cache_entry_id == entry.pk
