"""Factories for the console's tests: builds in every state, results, cache traffic and conversations."""

import hashlib
import uuid

import factory
from django.utils import timezone

from builds.models import Build, BuildAccessLog, BuildCacheEntry, BuildResult
from intake.models import Conversation
from tests.licensing.factories import LicenseFactory


def _hex64() -> str:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


class BuildFactory(factory.django.DjangoModelFactory):
    """A queued build of an active license's customer."""

    class Meta:
        model = Build

    license = factory.SubFactory(LicenseFactory)
    customer = factory.SelfAttribute("license.customer")
    manifest = factory.LazyFunction(lambda: {"base_image": "python:3.12", "n": str(uuid.uuid4())})
    manifest_hash = factory.LazyFunction(_hex64)
    priority = 5

    class Params:
        running = factory.Trait(
            status=Build.Status.RUNNING,
            worker_id=factory.Sequence(lambda n: f"worker-{n}"),
            started_at=factory.LazyFunction(timezone.now),
            heartbeat_at=factory.LazyFunction(timezone.now),
            stage="compile",
            progress=40,
        )


class BuildResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BuildResult

    build = factory.SubFactory(BuildFactory, status=Build.Status.SUCCEEDED)
    status = "succeeded"
    duration_ms = 60_000


class CacheEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BuildCacheEntry

    manifest_hash = factory.LazyFunction(_hex64)
    owner = factory.SubFactory("tests.licensing.factories.CustomerFactory")
    image_reference = "registry.example/app:1"
    image_digest = factory.LazyFunction(lambda: "sha256:" + _hex64())
    content_sha256 = factory.LazyFunction(_hex64)
    build_duration_ms = 120_000


class AccessLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BuildAccessLog

    manifest_hash = factory.LazyFunction(_hex64)
    customer_id = factory.LazyFunction(uuid.uuid4)
    hit = False


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    customer = factory.SubFactory("tests.licensing.factories.CustomerFactory")
    model = "claude-sonnet-4"
    title = factory.Faker("sentence", nb_words=4)
