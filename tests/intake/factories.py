"""Factories for conversations, messages, intents, extractions and manifests."""

from decimal import Decimal

import factory

from builds.cache.services import manifest_hash
from intake.models import BuildManifest, Conversation, ConversationIntent, ConversationMessage, RequirementExtraction
from tests.licensing.factories import CustomerFactory


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    customer = factory.SubFactory(CustomerFactory)
    model = "claude-sonnet-4"
    title = factory.Faker("sentence", nb_words=4)


class MessageFactory(factory.django.DjangoModelFactory):
    """A message whose cost was given by the caller (cost == given_cost)."""

    class Meta:
        model = ConversationMessage

    conversation = factory.SubFactory(ConversationFactory)
    role = ConversationMessage.Role.USER
    content = factory.Faker("sentence")
    prompt_tokens = factory.Faker("pyint", min_value=0, max_value=2000)
    completion_tokens = factory.Faker("pyint", min_value=0, max_value=2000)
    given_cost = factory.Faker("pydecimal", left_digits=1, right_digits=6, positive=True)
    cost = factory.SelfAttribute("given_cost")


class IntentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConversationIntent

    conversation = factory.SubFactory(ConversationFactory)
    intent = ConversationIntent.Intent.NEW_BUILD
    confidence = Decimal("0.900")


class ExtractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RequirementExtraction

    conversation = factory.SubFactory(ConversationFactory)
    requirement_type = RequirementExtraction.RequirementType.PACKAGE
    value = factory.Faker("word")
    confidence = Decimal("0.900")


class BuildManifestFactory(factory.django.DjangoModelFactory):
    """A draft manifest (schema v1) with its canonical hash."""

    class Meta:
        model = BuildManifest

    conversation = factory.SubFactory(ConversationFactory)
    customer = factory.SelfAttribute("conversation.customer")
    version = factory.Sequence(lambda n: n + 1)
    manifest = factory.LazyFunction(
        lambda: {
            "schema_version": 1,
            "base_image": "python:3.12-slim",
            "language": {"name": "python", "version": "3.12"},
            "packages": [],
            "architectures": ["amd64"],
            "registry": None,
            "env": {},
            "ports": [],
        }
    )
    manifest_hash = factory.LazyAttribute(lambda o: manifest_hash(o.manifest))
