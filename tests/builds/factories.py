"""Factories for the build queue: builds inserted directly (bypassing enqueue_build), in FIFO order."""

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
