"""The expire_old_conversations maintenance task."""

import datetime as dt

import pytest
from django.utils import timezone

from honua.registry import maintenance_tasks
from intake.models import Conversation
from tests.intake.factories import ConversationFactory


def _task():
    (task,) = [t for t in maintenance_tasks() if t.name == "expire_old_conversations"]
    return task


def test_registered_every_six_hours():
    """The task is registered on the every-6-hours schedule."""
    assert _task().schedule == "every-6-hours"


@pytest.mark.django_db
def test_dry_run_counts_and_changes_nothing_then_run_expires():
    """A dry run reports how many would expire without changing them; a real run expires them."""
    idle = ConversationFactory(last_message_at=timezone.now() - dt.timedelta(hours=30))
    ConversationFactory(last_message_at=timezone.now())
    assert _task().run(dry_run=True) == 1
    assert Conversation.objects.get(pk=idle.pk).status == "active"
    assert _task().run(dry_run=False) == 1
    assert Conversation.objects.get(pk=idle.pk).status == "expired"
