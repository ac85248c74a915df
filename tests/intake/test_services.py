"""Intake services: conversations, usage and cost, intents, extractions, manifests, satisfaction."""

from decimal import Decimal

import pytest

from builds.cache.services import manifest_hash
from intake import services
from intake.manifests import ManifestInvalid
from intake.models import (
    BuildManifest,
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ModelPrice,
    RequirementExtraction,
)
from tests.conftest import raises_db_error
from tests.intake.factories import ExtractionFactory
from tests.licensing.factories import CustomerFactory


@pytest.fixture
def conversation(db):
    return services.conversation_start(customer=CustomerFactory(), model="claude-sonnet-4", title="gdal image")


def _add(conversation, **fields):
    fields.setdefault("role", "user")
    fields.setdefault("content", "hello")
    return services.message_add(conversation=conversation, **fields)


def test_cost_computed_from_configured_prices(conversation):
    """With no cost given, cost = prompt x input price + completion x output price, per million tokens."""
    message = _add(conversation, prompt_tokens=1234, completion_tokens=567)
    # 1234 * 3 / 1e6 + 567 * 15 / 1e6 = 0.003702 + 0.008505
    assert message.computed_cost == Decimal("0.012207")
    assert message.given_cost is None
    assert message.cost == Decimal("0.012207")
    assert message.model == "claude-sonnet-4"
    conversation.refresh_from_db()
    assert conversation.total_cost == Decimal("0.012207")


def test_given_cost_wins_and_is_kept_apart(conversation):
    """A caller-given cost is what counts; the computed one is still recorded beside it."""
    message = _add(conversation, prompt_tokens=1_000_000, completion_tokens=0, cost=Decimal("1.5"))
    assert (message.given_cost, message.computed_cost, message.cost) == (Decimal("1.5"), Decimal("3"), Decimal("1.5"))
    conversation.refresh_from_db()
    assert conversation.total_cost == Decimal("1.5")


def test_message_model_and_dated_snapshot_prices(conversation):
    """A message's own model is priced, by exact name or by the longest configured prefix."""
    ModelPrice.objects.create(
        match_pattern="^tiny$", input_price="0.10", output_price="0.40", valid_from="2020-01-01T00:00Z", source="t"
    )
    assert _add(conversation, model="tiny", prompt_tokens=10_000).cost == Decimal("0.001")
    snapshot = _add(conversation, model="claude-sonnet-4-20250514", completion_tokens=1000)
    assert snapshot.cost == Decimal("0.015")


def test_unpriced_model_has_no_computed_cost(conversation):
    """A model without a configured price gets no computed cost, counts zero unless a cost is given, and is flagged."""
    message = _add(conversation, model="mystery-model", prompt_tokens=500)
    message.refresh_from_db()
    assert (message.computed_cost, message.cost, message.unpriced) == (None, Decimal(0), True)


def test_database_enforces_given_cost_wins(conversation):
    """The database refuses a cost that is neither the given nor the computed one."""
    with raises_db_error("conv_messages_cost_given_wins"):
        ConversationMessage.objects.create(
            conversation=conversation, role="user", content="x", given_cost=Decimal(1), cost=Decimal(2)
        )


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"role": "robot"}, "unknown role 'robot'"),
        ({"prompt_tokens": -1}, services.NEGATIVE_TOKENS),
        ({"completion_tokens": -5}, services.NEGATIVE_TOKENS),
        ({"cost": Decimal("-0.01")}, services.NEGATIVE_COST),
        ({"cost": Decimal("NaN")}, services.NEGATIVE_COST),
        ({"latency_ms": -1}, services.NEGATIVE_LATENCY),
    ],
)
def test_bad_message_is_refused_and_changes_nothing(conversation, fields, error):
    """Unknown role, negative tokens or cost: a clear error, no message, totals untouched."""
    with pytest.raises(services.InvalidInput, match=error):
        _add(conversation, **fields)
    conversation.refresh_from_db()
    assert conversation.message_count == 0
    assert not ConversationMessage.objects.exists()


def test_message_to_expired_conversation_is_refused(conversation):
    """A message to an expired conversation raises ConversationClosed naming its status."""
    Conversation.objects.filter(pk=conversation.pk).update(status="expired")
    conversation.refresh_from_db()
    with pytest.raises(services.ConversationClosed, match="is expired: messages can only be added"):
        _add(conversation)
    assert not ConversationMessage.objects.exists()


def test_message_to_conversation_expired_meanwhile_is_refused_by_the_database(conversation):
    """When the caller's copy is stale (expired meanwhile), the trigger refuses and the same error results."""
    Conversation.objects.filter(pk=conversation.pk).update(status="expired")
    with pytest.raises(services.ConversationClosed, match="is expired"):
        _add(conversation)
    assert not ConversationMessage.objects.exists()


def test_end_and_rate_conversation(conversation):
    """A conversation ends once; satisfaction is recorded with comment and source."""
    services.conversation_end(conversation=conversation)
    with pytest.raises(services.ConversationClosed, match="only an active conversation can be ended"):
        services.conversation_end(conversation=conversation, status="abandoned")
    rated = services.conversation_rate(conversation=conversation, score=4, comment="quick", source="user")
    assert (rated.status, rated.satisfaction_score, rated.satisfaction_comment) == ("completed", 4, "quick")
    assert rated.ended_at is not None


@pytest.mark.parametrize("score", [0, 6, 3.5, True])
def test_satisfaction_out_of_range_is_refused(conversation, score):
    """Satisfaction 0, 6 or a non-integer is refused and the score stays unset."""
    with pytest.raises(services.InvalidInput, match="from 1 to 5"):
        services.conversation_rate(conversation=conversation, score=score)
    conversation.refresh_from_db()
    assert conversation.satisfaction_score is None


def test_database_refuses_satisfaction_out_of_range(conversation):
    """The check constraint mirrors the service."""
    with raises_db_error("conversations_satisfaction_range"):
        Conversation.objects.filter(pk=conversation.pk).update(satisfaction_score=6)


def test_intents_and_extractions_validate(conversation):
    """Confidence above 1, unknown intents or types and a message of another conversation are refused."""
    message = _add(conversation)
    other = _add(services.conversation_start(customer=conversation.customer, model="m"))
    with pytest.raises(services.InvalidInput, match=services.CONFIDENCE_RANGE):
        services.intent_record(conversation=conversation, intent="new_build", confidence=Decimal("1.01"))
    with pytest.raises(services.InvalidInput, match="unknown intent 'shop'"):
        services.intent_record(conversation=conversation, intent="shop", confidence=1)
    with pytest.raises(services.InvalidInput, match="unknown requirement type 'colour'"):
        services.extraction_record(conversation=conversation, requirement_type="colour", value="x", confidence=1)
    with pytest.raises(services.InvalidInput, match=services.CONFIDENCE_RANGE):
        services.extraction_record(conversation=conversation, requirement_type="port", value="80", confidence=-0.1)
    with pytest.raises(services.InvalidInput, match="is not in conversation"):
        services.intent_record(conversation=conversation, intent="other", confidence=0.5, message_id=other.pk)
    assert not ConversationIntent.objects.exists() and not RequirementExtraction.objects.exists()
    intent = services.intent_record(conversation=conversation, intent="question", confidence=0.5, message_id=message.pk)
    assert intent.confidence == Decimal("0.500")


def test_database_refuses_confidence_above_one(conversation):
    """The check constraints mirror the services' confidence range."""
    with raises_db_error("conv_intents_confidence_range"):
        ConversationIntent.objects.create(conversation=conversation, intent="other", confidence=Decimal("1.5"))
    with raises_db_error("req_extractions_confidence_range"):
        ExtractionFactory(conversation=conversation, confidence=Decimal("1.001"))


def test_message_extract_records_what_the_extractor_found(conversation):
    """The configured extractor's intents and requirements are recorded against the message."""
    message = _add(conversation, content="python 3.12 with gdal for arm64 and amd64, push to my ECR")
    intents, extractions = services.message_extract(message=message)
    assert [i.intent for i in intents] == ["new_build"]
    assert {(e.requirement_type, e.value) for e in extractions} == {
        ("language", "python 3.12"),
        ("package", "gdal"),
        ("architecture", "arm64"),
        ("architecture", "amd64"),
        ("registry", "ecr"),
    }
    assert {e.source_message_id for e in extractions} == {message.pk}


def test_extraction_verification_outcomes(conversation):
    """correct, incorrect and corrected are recorded with who and when; a correction needs a new value."""
    a, b, c = (ExtractionFactory(conversation=conversation, value=v) for v in ("gdal", "numpy", "pandas"))
    assert services.extraction_verify(extraction=a, correct=True, verified_by="ops").verification == "correct"
    assert services.extraction_verify(extraction=b, correct=False).verification == "incorrect"
    with pytest.raises(services.InvalidInput, match="corrected with a new"):
        services.extraction_verify(extraction=c, correct=False, corrected_value="pandas")
    corrected = services.extraction_verify(extraction=c, correct=False, corrected_value="polars")
    assert (corrected.verification, corrected.corrected_value) == ("corrected", "polars")
    assert corrected.verified_at is not None and a.verified_by == "ops"


def _extract(conversation, text):
    services.message_extract(message=_add(conversation, content=text))


def test_manifest_generation_versions_and_supersedes(conversation):
    """Each generation with new content is the next version; the open one is superseded; same content is reused."""
    _extract(conversation, "python 3.12 with gdal for arm64 and amd64, push to my ECR")
    first = services.manifest_generate(conversation=conversation)
    assert (first.version, first.status) == (1, "draft")
    assert first.manifest["packages"] == ["gdal"]
    assert services.manifest_generate(conversation=conversation).pk == first.pk
    _extract(conversation, "also add numpy")
    second = services.manifest_generate(conversation=conversation)
    first.refresh_from_db()
    assert (second.version, second.status, first.status) == (2, "draft", "superseded")
    assert second.manifest["packages"] == ["gdal", "numpy"]
    assert len(second.manifest_hash) == 64 and second.manifest_hash != first.manifest_hash


def test_manifest_generation_uses_verification_outcomes(conversation):
    """Incorrect extractions are left out and corrected ones use their corrected value."""
    _extract(conversation, "python 3.12 with gdal and numpy for arm64")
    gdal = conversation.extractions.get(value="gdal")
    services.extraction_verify(extraction=gdal, correct=False)
    language = conversation.extractions.get(requirement_type="language")
    services.extraction_verify(extraction=language, correct=False, corrected_value="python 3.13")
    manifest = services.manifest_generate(conversation=conversation).manifest
    assert manifest["packages"] == ["numpy"]
    assert manifest["base_image"] == "python:3.13-slim"


def test_manifest_generation_needs_requirements(conversation):
    """A conversation with nothing extracted has no manifest to generate."""
    with pytest.raises(services.InvalidInput, match="no usable requirements"):
        services.manifest_generate(conversation=conversation)


def test_manifest_failing_the_schema_is_refused(conversation):
    """A hand-written manifest that fails the schema is refused and nothing is stored."""
    with pytest.raises(ManifestInvalid, match="missing base_image, language"):
        services.manifest_create(conversation=conversation, manifest={"schema_version": 1})
    assert not BuildManifest.objects.exists()


def test_approve_only_a_draft(conversation):
    """A draft is approved once (validated again); approving it again is refused."""
    _extract(conversation, "python 3.12 with gdal")
    draft = services.manifest_generate(conversation=conversation)
    approved = services.manifest_approve(manifest=draft, approved_by="alice")
    assert (approved.status, approved.approved_by) == ("approved", "alice")
    assert approved.approved_at is not None
    with pytest.raises(services.ManifestStateError, match="only a draft can be approved"):
        services.manifest_approve(manifest=draft)


def test_approving_an_edited_draft_revalidates(conversation):
    """A draft edited into an invalid manifest cannot be approved."""
    _extract(conversation, "python 3.12 with gdal")
    draft = services.manifest_generate(conversation=conversation)
    edited = {**draft.manifest, "architectures": ["mips"]}
    BuildManifest.objects.filter(pk=draft.pk).update(manifest=edited, manifest_hash=manifest_hash(edited))
    with pytest.raises(ManifestInvalid, match="unknown architecture"):
        services.manifest_approve(manifest=draft)
    draft.refresh_from_db()
    assert draft.status == "draft"


def _say(conversation, text, role="user"):
    message = services.message_add(conversation=conversation, role=role, content=text)
    if role == "user":
        services.message_extract(message=message)
    return message


def test_later_message_corrects_the_manifest(conversation):
    """Extraction sees the conversation: 'arm64 only', 'drop proj' and 'port 9090 not 8080' in later messages
    remove and replace what earlier ones asked for, in the generated manifest."""
    _say(conversation, "python 3.12 with gdal and proj for arm64 and amd64, exposing port 8080")
    _say(conversation, "Anything else?", role="assistant")
    _say(conversation, "actually make it arm64 only, and drop proj")
    _say(conversation, "port 9090 not 8080")
    manifest = services.manifest_generate(conversation=conversation).manifest
    assert (manifest["architectures"], manifest["packages"], manifest["ports"]) == (["arm64"], ["gdal"], [9090])
    actions = set(conversation.extractions.values_list("requirement_type", "value", "action"))
    assert {("architecture", "arm64", "replace"), ("package", "proj", "remove"), ("port", "8080", "remove")} <= actions


def test_bare_answer_uses_the_conversation(conversation):
    """A bare '3.11' after a question about the version is read as the Python version."""
    _say(conversation, "python image with numpy please")
    _say(conversation, "Which Python version?", role="assistant")
    _say(conversation, "3.11")
    assert services.manifest_generate(conversation=conversation).manifest["language"] == {
        "name": "python",
        "version": "3.11",
    }


def test_extraction_action_is_validated(conversation):
    """An unknown action is refused by the service and by the database with the same meaning."""
    with pytest.raises(services.InvalidInput, match="unknown requirement action 'toggle'"):
        services.extraction_record(
            conversation=conversation, requirement_type="package", value="x", confidence=1, action="toggle"
        )
    with raises_db_error("req_extractions_action_valid"):
        RequirementExtraction.objects.create(
            conversation=conversation, requirement_type="package", value="x", confidence=1, action="toggle"
        )


def test_version_one_extractor_through_the_service(conversation):
    """A custom extractor written for interface version 1 still records what it finds."""
    from tests.intake.test_extractors import OldStyleExtractor

    message = services.message_add(conversation=conversation, role="user", content="add numpy")
    _, extractions = services.message_extract(message=message, extractor=OldStyleExtractor())
    assert [(e.value, e.action) for e in extractions] == [("numpy", "add")]
