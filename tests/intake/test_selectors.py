"""Intake selectors."""

import datetime as dt

import pytest
from django.utils import timezone

from intake import selectors
from tests.intake.factories import BuildManifestFactory, ConversationFactory, MessageFactory


@pytest.mark.django_db
def test_conversations_active_most_recent_first_and_by_customer():
    """Active, not deleted conversations, most recently spoken to first, optionally for one customer."""
    now = timezone.now()
    older = ConversationFactory(last_message_at=now - dt.timedelta(hours=2))
    newer = ConversationFactory(customer=older.customer, last_message_at=now)
    ConversationFactory(customer=older.customer, status="expired")
    ConversationFactory(customer=older.customer, deleted_at=now)
    other = ConversationFactory(last_message_at=now - dt.timedelta(hours=1))
    assert list(selectors.conversations_active()) == [newer, other, older]
    assert list(selectors.conversations_active(customer=older.customer)) == [newer, older]


@pytest.mark.django_db
def test_transcript_in_order_and_open_manifest():
    """The transcript is in insertion order; the open manifest is the draft or approved one."""
    conversation = ConversationFactory()
    messages = [MessageFactory(conversation=conversation) for _ in range(3)]
    assert list(selectors.conversation_transcript(conversation=conversation)) == messages
    assert selectors.manifest_open(conversation=conversation) is None
    BuildManifestFactory(conversation=conversation, version=1, status="superseded")
    current = BuildManifestFactory(conversation=conversation, version=2)
    assert selectors.manifest_open(conversation=conversation) == current
