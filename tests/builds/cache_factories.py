"""Helpers for the build cache's tests: successful builds with images, and cache entries registered from them."""

import datetime as dt
import hashlib
import uuid

from django.db import connection
from django.utils import timezone

from builds.cache.services import manifest_hash
from builds.models import Build, BuildArtifact, BuildCacheEntry
from tests.licensing.factories import LicenseFactory


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def succeeded_build(license=None, *, manifest=None, duration=dt.timedelta(minutes=5), image_size=1000, **fields):
    """A succeeded build of ``manifest`` (a fresh one by default) with an image and one image artifact."""
    license = license or LicenseFactory()
    manifest = manifest if manifest is not None else {"base": "alpine:3.20", "run": [str(uuid.uuid4())]}
    finished = timezone.now()
    fields = {"status": Build.Status.SUCCEEDED, **fields}
    build = Build.objects.create(
        customer=license.customer,
        license=license,
        manifest=manifest,
        manifest_hash=manifest_hash(manifest),
        worker_id="worker-1",
        started_at=finished - duration,
        finished_at=finished,
        progress=100,
        image_reference=f"registry.example/app:{uuid.uuid4().hex[:12]}",
        image_digest="sha256:" + sha(str(uuid.uuid4())),
        **fields,
    )
    if image_size is not None:
        BuildArtifact.objects.create(
            build=build,
            kind="image",
            uri=f"oci://{build.image_reference}",
            media_type="application/vnd.oci.image.manifest.v1+json",
            size_bytes=image_size,
            sha256=sha(str(build.pk)),
        )
    return build


def register(build) -> BuildCacheEntry:
    with connection.cursor() as cursor:
        cursor.execute("SELECT register_build_in_cache(%s)", [build.pk])
        return BuildCacheEntry.objects.get(pk=cursor.fetchone()[0])


def cached(license=None, **kwargs) -> BuildCacheEntry:
    """A cache entry registered from a fresh succeeded build."""
    return register(succeeded_build(license, **kwargs))


def lookup(manifest_hash_: str, customer_id) -> BuildCacheEntry | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM record_cache_access(%s, %s)", [manifest_hash_, customer_id])
        row = cursor.fetchone()
    return BuildCacheEntry.objects.get(pk=row[0]) if row else None
