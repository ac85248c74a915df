"""Factories for the build queue: builds inserted directly (bypassing enqueue_build), in FIFO order."""

import datetime as dt
import uuid

import factory
from django.utils import timezone

from builds.cache.services import manifest_hash
from builds.models import Build
from tests.licensing.factories import LicenseFactory


class BuildFactory(factory.django.DjangoModelFactory):
    """A queued build of a fresh license (pro unless given). created_at is the clock, so creation order is FIFO."""

    class Meta:
        model = Build

    license = factory.SubFactory(LicenseFactory)
    customer = factory.LazyAttribute(lambda build: build.license.customer)
    manifest = factory.LazyFunction(lambda: {"base": "python:3.12-slim", "packages": [uuid.uuid4().hex]})
    manifest_hash = factory.LazyAttribute(lambda build: manifest_hash(build.manifest))
    priority = 5
    created_at = factory.LazyFunction(timezone.now)


def finished_build(license, status, *, finished_at, wait_s=None, duration_s=None, cache_hit=False) -> Build:
    """A build of ``license`` that finished with ``status`` at ``finished_at``, after queueing ``wait_s`` and running
    ``duration_s`` seconds (never started when ``duration_s`` is None)."""
    build = BuildFactory(license=license)
    started_at = None if duration_s is None else finished_at - dt.timedelta(seconds=duration_s)
    created_at = finished_at if started_at is None else started_at - dt.timedelta(seconds=wait_s)
    Build.objects.filter(pk=build.pk).update(
        status=status, cache_hit=cache_hit, created_at=created_at, started_at=started_at, finished_at=finished_at,
        progress=100,
    )  # fmt: skip
    return build
