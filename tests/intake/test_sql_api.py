"""expire_old_conversations and the intake views, against hand-computed figures."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from builds.models import Build
from intake.models import (
    ActiveConversation,
    Conversation,
    ConversationPerformanceSummary,
    ExtractionAccuracy,
    IntentAnalytics,
)
from tests.conftest import raises_db_error
from tests.intake.factories import (
    BuildManifestFactory,
    ConversationFactory,
    ExtractionFactory,
    IntentFactory,
    MessageFactory,
)
from tests.licensing.factories import LicenseFactory

HEX = "a" * 64


def _now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def _expire(hours=None):
    with connection.cursor() as cursor:
        if hours is None:
            cursor.execute("SELECT expire_old_conversations()")
        else:
            cursor.execute("SELECT expire_old_conversations(%s)", [hours])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_expire_old_conversations_at_the_boundary():
    """Idle exactly p_hours stays active; idle a microsecond longer expires; only active ones change."""
    now = _now()
    boundary = now - dt.timedelta(hours=24)
    at_boundary = ConversationFactory(last_message_at=boundary)
    past_boundary = ConversationFactory(last_message_at=boundary - dt.timedelta(microseconds=1))
    never_spoke = ConversationFactory(started_at=boundary - dt.timedelta(seconds=1))
    recent = ConversationFactory(last_message_at=now)
    completed = ConversationFactory(status="completed", last_message_at=boundary - dt.timedelta(days=3))
    deleted = ConversationFactory(last_message_at=boundary - dt.timedelta(days=3), deleted_at=now)
    assert _expire() == 2
    statuses = dict(Conversation.objects.values_list("id", "status"))
    assert statuses[at_boundary.pk] == "active"
    assert statuses[past_boundary.pk] == "expired"
    assert statuses[never_spoke.pk] == "expired"
    assert statuses[recent.pk] == "active"
    assert statuses[completed.pk] == "completed"
    assert statuses[deleted.pk] == "active"
    assert Conversation.objects.get(pk=past_boundary.pk).ended_at == now
    assert _expire() == 0  # idempotent


@pytest.mark.django_db
def test_expire_old_conversations_custom_hours_and_bad_input():
    """p_hours sets the idle limit; zero, negative or NULL hours are a clear error."""
    now = _now()
    two_hours = ConversationFactory(last_message_at=now - dt.timedelta(hours=2, seconds=1))
    assert _expire(3) == 0
    assert _expire(2) == 1
    assert Conversation.objects.get(pk=two_hours.pk).status == "expired"
    for bad in (0, -1):
        with raises_db_error("p_hours must be a positive number of hours"):
            _expire(bad)
    with raises_db_error("p_hours must be a positive number of hours, not NULL"), connection.cursor() as cursor:
        cursor.execute("SELECT expire_old_conversations(NULL)")


@pytest.mark.django_db
def test_active_conversations_view():
    """Only active, not deleted conversations, with their customer, totals, idle time and open manifest."""
    now = _now()
    active = ConversationFactory(title="live")
    MessageFactory(conversation=active, prompt_tokens=10, completion_tokens=20, given_cost=Decimal("0.5"))
    MessageFactory(conversation=active, prompt_tokens=1, completion_tokens=2, given_cost=Decimal("0.25"))
    Conversation.objects.filter(pk=active.pk).update(last_message_at=now - dt.timedelta(minutes=5))
    manifest = BuildManifestFactory(conversation=active, version=1)
    ConversationFactory(status="expired")
    ConversationFactory(deleted_at=now)
    (row,) = ActiveConversation.objects.all()
    assert row.pk == active.pk and row.customer_name == active.customer.name
    assert (row.message_count, row.prompt_tokens, row.completion_tokens, row.total_cost) == (2, 11, 22, Decimal("0.75"))
    assert row.idle_for == dt.timedelta(minutes=5)
    assert (row.open_manifest_id, row.open_manifest_version, row.open_manifest_status) == (manifest.pk, 1, "draft")


def _on_day(conversation, day, model):
    Conversation.objects.filter(pk=conversation.pk).update(started_at=day, model=model)


@pytest.mark.django_db
def test_conversation_performance_summary_view():
    """Per UTC day and model: counts, tokens, cost, average of rated scores, share with a submitted manifest."""
    license = LicenseFactory()
    customer = license.customer
    day1 = dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.UTC)
    day2 = dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
    a, b, c, d, e = (ConversationFactory(customer=customer) for _ in range(5))
    for conversation, tokens, cost in (
        (a, (100, 50), "0.1"),
        (a, (10, 5), "0.01"),
        (b, (200, 0), "0.2"),
        (d, (7, 3), "1"),
    ):
        MessageFactory(
            conversation=conversation, prompt_tokens=tokens[0], completion_tokens=tokens[1], given_cost=Decimal(cost)
        )
    for conversation, day, model in (
        (a, day1, "m1"),
        (b, day1, "m1"),
        (c, day1, "m1"),
        (d, day2, "m1"),
        (e, day1, "m2"),
    ):
        _on_day(conversation, day, model)
    Conversation.objects.filter(pk=a.pk).update(satisfaction_score=5)
    Conversation.objects.filter(pk=b.pk).update(satisfaction_score=2)
    build = Build.objects.create(customer=customer, license=license, manifest={}, manifest_hash=HEX)
    for conversation, status in ((a, "submitted"), (b, "superseded"), (b, "draft")):
        BuildManifestFactory(
            conversation=conversation,
            status=status,
            approved_at=day1 if status == "submitted" else None,
            build=build if status == "submitted" else None,
            submitted_at=day1 if status == "submitted" else None,
        )
    ConversationFactory(customer=customer, deleted_at=day1)  # left out
    rows = {(r.day, r.model): r for r in ConversationPerformanceSummary.objects.all()}
    assert set(rows) == {(day1.date(), "m1"), (day2.date(), "m1"), (day1.date(), "m2")}
    first = rows[(day1.date(), "m1")]
    assert first.pk == "2026-03-01/m1"
    assert (first.conversations, first.messages, first.prompt_tokens, first.completion_tokens, first.total_tokens) == (
        3,
        3,
        310,
        55,
        365,
    )
    assert first.total_cost == Decimal("0.31")
    assert (first.rated_conversations, first.avg_satisfaction) == (2, Decimal("3.50"))
    assert (first.submitted_conversations, first.submitted_share) == (1, Decimal("0.3333"))
    second = rows[(day2.date(), "m1")]
    assert (second.conversations, second.messages, second.total_cost, second.avg_satisfaction) == (
        1,
        1,
        Decimal(1),
        None,
    )
    assert second.submitted_share == Decimal(0)


@pytest.mark.django_db
def test_intent_analytics_view():
    """Per UTC day and intent: count, distinct conversations, average confidence to 3 places."""
    a, b = ConversationFactory(), ConversationFactory()
    day1 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    day2 = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    for conversation, intent, confidence, day in (
        (a, "new_build", "0.9", day1),
        (a, "new_build", "0.8", day1),
        (b, "new_build", "0.35", day1),
        (b, "question", "0.5", day1),
        (a, "new_build", "1", day2),
    ):
        IntentFactory(conversation=conversation, intent=intent, confidence=Decimal(confidence))
        conversation.intents.filter(created_at__gt=day2).update(created_at=day)
    deleted = ConversationFactory(deleted_at=day1)
    IntentFactory(conversation=deleted)
    rows = {(r.day, r.intent): r for r in IntentAnalytics.objects.all()}
    assert set(rows) == {(day1.date(), "new_build"), (day1.date(), "question"), (day2.date(), "new_build")}
    built = rows[(day1.date(), "new_build")]
    assert (built.intents, built.conversations, built.avg_confidence) == (3, 2, Decimal("0.683"))
    assert rows[(day2.date(), "new_build")].intents == 1


@pytest.mark.django_db
def test_extraction_accuracy_view():
    """Per type: verified share = verified / all, precision = correct / verified (NULL when none verified)."""
    conversation = ConversationFactory()
    for verification in (
        "correct",
        "correct",
        "correct",
        "incorrect",
        "corrected",
        "unverified",
        "unverified",
        "unverified",
    ):
        ExtractionFactory(
            conversation=conversation,
            requirement_type="package",
            verification=verification,
            corrected_value="x" if verification == "corrected" else None,
            confidence=Decimal("0.800"),
        )
    ExtractionFactory(conversation=conversation, requirement_type="port", value="80", confidence=Decimal("0.5"))
    rows = {r.requirement_type: r for r in ExtractionAccuracy.objects.all()}
    package = rows["package"]
    assert (package.extractions, package.verified, package.correct, package.corrected, package.incorrect) == (
        8,
        5,
        3,
        1,
        1,
    )
    assert (package.verified_share, package.precision, package.avg_confidence) == (
        Decimal("0.6250"),
        Decimal("0.6000"),
        Decimal("0.800"),
    )
    assert (rows["port"].verified_share, rows["port"].precision) == (Decimal(0), None)


@pytest.mark.django_db
def test_manifest_must_be_a_schema_shaped_object():
    """The database refuses a manifest that is not a JSON object with the schema's keys."""
    conversation = ConversationFactory()
    with raises_db_error("build_manifests_manifest_object"):
        BuildManifestFactory(conversation=conversation, manifest={"architectures": ["amd64"]})
    with raises_db_error("a manifest must be a JSON object"):
        BuildManifestFactory(conversation=conversation, manifest=["schema_version", "architectures"], manifest_hash=HEX)


@pytest.mark.django_db
def test_manifest_hash_must_be_the_canonical_hash():
    """The stored hash is always the build cache's canonical hash of the manifest."""
    conversation = ConversationFactory()
    with raises_db_error("build_manifests_hash_canonical"):
        BuildManifestFactory(conversation=conversation, manifest_hash=HEX)
