"""Intake under concurrency, with real connections in threads."""

import datetime as dt
import functools

import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build
from intake import services
from intake.models import BuildManifest, Conversation, ConversationMessage
from tests.conftest import raised, run_together
from tests.intake.factories import ConversationFactory
from tests.licensing.factories import LicenseFactory


def _run_concurrently(work, count):
    """``work(0)`` .. ``work(count - 1)`` in threads that start together: their results and the errors raised."""
    outcomes = run_together(*(functools.partial(work, n) for n in range(count)))
    return [outcome for outcome in outcomes if not isinstance(outcome, Exception)], raised(outcomes)


@pytest.mark.django_db(transaction=True)
def test_concurrent_generations_make_distinct_versions_and_one_open_manifest():
    """8 concurrent generations of different content give versions 1..8 and exactly one open manifest."""
    conversation = services.conversation_start(customer=LicenseFactory().customer, model="claude-sonnet-4")
    for n in range(8):
        message = services.message_add(conversation=conversation, role="user", content=f"python 3.12 with pkg{n}")
        services.message_extract(message=message)

    def generate(n):
        services.extraction_record(
            conversation=conversation, requirement_type="port", value=str(8000 + n), confidence=1
        )
        return services.manifest_generate(conversation=conversation).version

    _, errors = _run_concurrently(generate, 8)
    assert errors == []
    versions = sorted(BuildManifest.objects.filter(conversation=conversation).values_list("version", flat=True))
    assert versions == list(range(1, len(versions) + 1))
    assert BuildManifest.objects.filter(conversation=conversation, status__in=["draft", "approved"]).count() == 1
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_of_one_manifest_make_one_build():
    """8 connections submitting the same approved manifest at once: one build, recorded once."""
    license = LicenseFactory(starts_at=timezone.now() - dt.timedelta(days=1))
    conversation = services.conversation_start(customer=license.customer, model="claude-sonnet-4")
    message = services.message_add(conversation=conversation, role="user", content="python 3.12 with gdal")
    services.message_extract(message=message)
    manifest = services.manifest_approve(manifest=services.manifest_generate(conversation=conversation))

    results, errors = _run_concurrently(lambda n: services.manifest_submit(manifest=manifest).build_id, 8)
    assert errors == []
    assert len(set(results)) == 1
    assert Build.objects.count() == 1
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_expiry_racing_message_inserts_never_loses_or_strands_a_message():
    """While writers add messages, expire_old_conversations either expires a conversation before a message (which
    is then refused) or not at all; totals always match the messages stored."""
    stale = timezone.now() - dt.timedelta(hours=48)
    conversations = [ConversationFactory(last_message_at=stale) for _ in range(6)]

    def work(n):
        if n == 0:
            with connection.cursor() as cursor:
                cursor.execute("SELECT expire_old_conversations(24)")
                return cursor.fetchone()[0]
        refused = 0
        for conversation in conversations:
            fresh = Conversation.objects.get(pk=conversation.pk)
            try:
                services.message_add(conversation=fresh, role="user", content=f"writer {n}")
            except services.ConversationClosed:
                refused += 1
        return refused

    _, errors = _run_concurrently(work, 5)
    assert errors == []
    for conversation in conversations:
        conversation.refresh_from_db()
        stored = ConversationMessage.objects.filter(conversation=conversation)
        assert conversation.message_count == stored.count()
        if conversation.status == "expired":
            assert all(m.created_at <= conversation.ended_at for m in stored)
        else:
            assert stored.exists()
    connection.close()
