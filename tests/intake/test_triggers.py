"""update_conversation_stats: conversation totals stay exact as messages are added, edited and deleted."""

import functools
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Max, Sum

from intake.models import ConversationMessage
from tests.conftest import raised, raises_db_error, run_together
from tests.intake.factories import ConversationFactory, MessageFactory


def _totals(conversation):
    conversation.refresh_from_db()
    return (
        conversation.message_count,
        conversation.prompt_tokens,
        conversation.completion_tokens,
        conversation.total_cost,
        conversation.last_message_at,
    )


def _recomputed(conversation):
    agg = ConversationMessage.objects.filter(conversation=conversation).aggregate(
        n=Count("id"), p=Sum("prompt_tokens"), c=Sum("completion_tokens"), cost=Sum("cost"), last=Max("created_at")
    )
    return (agg["n"], agg["p"] or 0, agg["c"] or 0, agg["cost"] or Decimal(0), agg["last"])


@pytest.mark.django_db
def test_totals_exact_after_inserts():
    """Each inserted message adds one to the count and its tokens and cost to the totals."""
    conversation = ConversationFactory()
    MessageFactory(conversation=conversation, prompt_tokens=100, completion_tokens=5, given_cost=Decimal("0.001"))
    MessageFactory(conversation=conversation, prompt_tokens=20, completion_tokens=300, given_cost=Decimal("0.25"))
    totals = _totals(conversation)
    assert totals[:4] == (2, 120, 305, Decimal("0.251000"))
    assert totals == _recomputed(conversation)


@pytest.mark.django_db
def test_totals_exact_after_bulk_insert():
    """A multi-row INSERT counts every row."""
    conversation = ConversationFactory()
    ConversationMessage.objects.bulk_create(
        ConversationMessage(
            conversation=conversation,
            role="user",
            content="x",
            prompt_tokens=i,
            cost=Decimal("0.5"),
            given_cost=Decimal("0.5"),
        )
        for i in range(10)
    )
    assert _totals(conversation)[:4] == (10, 45, 0, Decimal("5.000000"))


@pytest.mark.django_db
def test_totals_exact_after_edits():
    """Editing a message's tokens or cost moves the totals by the difference; editing its text changes nothing."""
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, prompt_tokens=100, completion_tokens=10, given_cost=Decimal("1"))
    MessageFactory(conversation=conversation, prompt_tokens=1, completion_tokens=1, given_cost=Decimal("0.5"))
    ConversationMessage.objects.filter(pk=first.pk).update(
        prompt_tokens=40, completion_tokens=60, given_cost=Decimal("0.25"), cost=Decimal("0.25")
    )
    assert _totals(conversation)[:4] == (2, 41, 61, Decimal("0.750000"))
    ConversationMessage.objects.filter(pk=first.pk).update(content="edited")
    assert _totals(conversation) == _recomputed(conversation)


@pytest.mark.django_db
def test_totals_exact_after_deletes():
    """Deleting messages subtracts them; deleting the latest moves last_message_at back to the one before."""
    conversation = ConversationFactory()
    messages = [MessageFactory(conversation=conversation) for _ in range(3)]
    ConversationMessage.objects.filter(pk=messages[0].pk).update(created_at=messages[0].created_at.replace(year=2025))
    messages[2].delete()
    assert _totals(conversation) == _recomputed(conversation)
    ConversationMessage.objects.filter(conversation=conversation).delete()
    assert _totals(conversation) == (0, 0, 0, Decimal(0), None)


@pytest.mark.django_db
def test_message_cannot_move_between_conversations():
    """A message's conversation cannot change, so no total is ever counted twice."""
    message = MessageFactory()
    other = ConversationFactory(customer=message.conversation.customer)
    with raises_db_error("cannot move to another conversation"):
        ConversationMessage.objects.filter(pk=message.pk).update(conversation=other)


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["expired", "completed", "abandoned"])
def test_database_refuses_messages_to_closed_conversations(status):
    """The trigger refuses a message to a conversation that is not active, and nothing changes."""
    conversation = ConversationFactory(status=status)
    with raises_db_error(f"is {status}: messages can only be added to an active conversation"):
        MessageFactory(conversation=conversation)
    assert _totals(conversation)[0] == 0
    assert not ConversationMessage.objects.filter(conversation=conversation).exists()


@pytest.mark.django_db
def test_deleting_a_conversation_deletes_its_messages():
    """A conversation delete cascades through the trigger without error."""
    conversation = ConversationFactory()
    MessageFactory(conversation=conversation)
    conversation.delete()
    assert not ConversationMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_totals_exact_with_16_concurrent_writers():
    """16 connections inserting, editing and deleting in one conversation at once leave exact totals."""
    conversation = ConversationFactory()
    writers, per_writer = 16, 10

    def write(n):
        for i in range(per_writer):
            message = ConversationMessage.objects.create(
                conversation_id=conversation.pk,
                role="assistant",
                content=f"writer {n} message {i}",
                prompt_tokens=n + i,
                completion_tokens=2 * i,
                given_cost=Decimal("0.000100") * (n + 1),
                cost=Decimal("0.000100") * (n + 1),
            )
            if i % 3 == 0:
                ConversationMessage.objects.filter(pk=message.pk).update(prompt_tokens=1000 + n)
            if i % 5 == 4:
                message.delete()

    outcomes = run_together(*(functools.partial(write, n) for n in range(writers)))
    assert raised(outcomes) == []
    totals = _totals(conversation)
    assert totals[0] == writers * (per_writer - 2)
    assert totals == _recomputed(conversation)
    connection.close()


@pytest.mark.django_db
def test_database_refuses_unknown_role_and_negative_tokens():
    """The message constraints mirror the service: unknown role, negative tokens."""
    conversation = ConversationFactory()
    with raises_db_error("conv_messages_role_valid"):
        MessageFactory(conversation=conversation, role="robot")
    with raises_db_error("conv_messages_tokens_nonneg"):
        MessageFactory(conversation=conversation, prompt_tokens=-1)
    assert _totals(conversation)[0] == 0
