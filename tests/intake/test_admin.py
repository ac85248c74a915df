"""Intake admin: pages render with bounded queries, actions go through services, view admins are read-only."""

import datetime as dt
import random

import pytest
from django.urls import reverse
from django.utils import timezone

from intake import demo
from intake.models import BuildManifest, Conversation, RequirementExtraction
from tests.intake.factories import ConversationFactory, ExtractionFactory, MessageFactory
from tests.licensing.factories import LicenseFactory


@pytest.fixture
def demo_data(db):
    LicenseFactory(starts_at=timezone.now() - dt.timedelta(days=1))
    demo.load(rng=random.Random(1), scale="demo")


VIEW_MODELS = ["activeconversation", "conversationperformancesummary", "intentanalytics", "extractionaccuracy"]


@pytest.mark.parametrize("model", ["conversation", "buildmanifest", "requirementextraction", *VIEW_MODELS])
def test_changelists_render_with_bounded_queries(admin_client, demo_data, django_assert_max_num_queries, model):
    """Every intake changelist renders, in a number of queries that does not grow with the rows."""
    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse(f"admin:intake_{model}_changelist"))
    assert response.status_code == 200


def test_conversation_page_shows_transcript_and_inlines(admin_client, db):
    """A conversation's page shows its messages with tokens and cost, its extractions and its manifests."""
    conversation = ConversationFactory()
    MessageFactory(conversation=conversation, content="python 3.12 with gdal", prompt_tokens=321)
    ExtractionFactory(conversation=conversation, value="gdal")
    response = admin_client.get(reverse("admin:intake_conversation_change", args=[conversation.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "python 3.12 with gdal" in body and "321" in body and "transcript" in body.lower()
    assert "gdal" in body


def test_conversation_filters(admin_client, demo_data):
    """Conversations filter by status, model and satisfaction."""
    url = reverse("admin:intake_conversation_changelist")
    response = admin_client.get(url, {"status__exact": "expired", "model": "claude-sonnet-4", "satisfaction_score": 5})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
    response = admin_client.get(url, {"status__exact": "completed", "satisfaction_score": 5})
    assert response.context["cl"].result_count == 1


@pytest.mark.parametrize("model", VIEW_MODELS)
def test_view_admins_are_read_only(admin_client, db, model):
    """The admins over SQL views allow no add (and offer no delete action)."""
    response = admin_client.get(reverse(f"admin:intake_{model}_add"))
    assert response.status_code == 403


def test_approve_and_submit_actions(admin_client, demo_data):
    """The approve action approves drafts only; submit sends approved manifests to the build queue."""
    url = reverse("admin:intake_buildmanifest_changelist")
    drafts = list(BuildManifest.objects.filter(status="draft").values_list("pk", flat=True))
    everything = list(BuildManifest.objects.values_list("pk", flat=True))
    admin_client.post(url, {"action": "approve", "_selected_action": everything})
    assert not BuildManifest.objects.filter(status="draft").exists()
    assert set(BuildManifest.objects.filter(pk__in=drafts).values_list("status", flat=True)) == {"approved"}
    admin_client.post(url, {"action": "submit", "_selected_action": everything})
    assert set(BuildManifest.objects.values_list("status", flat=True)) == {"submitted", "superseded"}


def test_verification_actions(admin_client, db):
    """Extractions are marked correct or incorrect through the service, recording who did it."""
    extraction = ExtractionFactory()
    url = reverse("admin:intake_requirementextraction_changelist")
    admin_client.post(url, {"action": "mark_incorrect", "_selected_action": [extraction.pk]})
    extraction.refresh_from_db()
    assert (extraction.verification, extraction.verified_by) == (RequirementExtraction.Verification.INCORRECT, "admin")


def test_mark_abandoned_action_only_touches_active(admin_client, db):
    """Only active conversations are marked abandoned."""
    active, expired = ConversationFactory(), ConversationFactory(status="expired")
    url = reverse("admin:intake_conversation_changelist")
    admin_client.post(url, {"action": "mark_abandoned", "_selected_action": [active.pk, expired.pk]})
    assert dict(Conversation.objects.values_list("pk", "status")) == {active.pk: "abandoned", expired.pk: "expired"}
