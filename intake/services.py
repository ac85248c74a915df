"""Intake writes: conversations, messages with usage and cost, intents, extractions, manifests, satisfaction.

Totals on ``conversations`` are kept by the ``update_conversation_stats`` trigger, never here. The database
enforces every invariant; these functions check first to give a person a clear message, and turn the database's
own refusals (a race lost to ``expire_old_conversations``, say) into the same exceptions.
"""

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal

from django.db import DatabaseError, connection, transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Length, Now
from django.utils import timezone

from builds.models import Build
from builds.queue.services import build_enqueue
from intake.exceptions import ConversationClosed, IntakeError, InvalidInput, ManifestInvalid, ManifestStateError
from intake.extractors import ConversationExtractor, Extractor, Turn, as_conversation_extractor, get_extractor
from intake.manifests import (
    MIN_CONFIDENCE,
    Credential,
    Requirement,
    manifest_from_requirements,
    manifest_hash,
    validate_manifest,
)
from intake.models import (
    INTENTS,
    REQUIREMENT_ACTIONS,
    REQUIREMENT_TYPES,
    BuildManifest,
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ModelPrice,
    RequirementExtraction,
)
from licensing.models import Customer, RegistryCredential

__all__ = ["ConversationClosed", "IntakeError", "InvalidInput", "ManifestInvalid", "ManifestStateError"]

CONVERSATION_CLOSED = "conversation {id} is {status}: messages can only be added to an active conversation"
UNKNOWN_ROLE = "unknown role {role!r}; expected one of system, user, assistant, tool"
NEGATIVE_TOKENS = "token counts cannot be negative"
NEGATIVE_COST = "a cost must be a finite amount, not negative"
NEGATIVE_LATENCY = "latency cannot be negative"
CONFIDENCE_RANGE = "confidence must be between 0 and 1"
UNKNOWN_INTENT = "unknown intent {intent!r}; expected one of " + ", ".join(INTENTS)
UNKNOWN_REQUIREMENT_TYPE = "unknown requirement type {kind!r}; expected one of " + ", ".join(REQUIREMENT_TYPES)
EMPTY_VALUE = "a requirement needs a value"
UNKNOWN_ACTION = "unknown requirement action {action!r}; expected one of " + ", ".join(REQUIREMENT_ACTIONS)
CORRECTED_VALUE_REQUIRED = "an incorrect extraction can only be corrected with a new, non-empty value"
SATISFACTION_RANGE = "satisfaction must be a whole number from 1 to 5"
UNKNOWN_SCORE_SOURCE = "unknown satisfaction source {source!r}; expected user, operator or model"
NOT_A_DRAFT = "manifest {id} is {status}: only a draft can be approved"
NOT_APPROVED = "manifest {id} is {status}: only an approved manifest can be submitted"
NOTHING_TO_GENERATE = "conversation {id} has no usable requirements to build a manifest from"
CANNOT_END = "conversation {id} is {status}: only an active conversation can be ended"
WRONG_MESSAGE = "message {message_id} is not in conversation {conversation_id}"

PRICE_PATTERN_EMPTY = "a price needs a model pattern"
PRICE_PATTERN_INVALID = "{pattern!r} is not a regular expression PostgreSQL accepts"
PRICE_NEGATIVE = "prices per million tokens must be given and not negative"
PRICE_OVERLAP = "another price of {pattern!r} is valid for part of that period; close it (valid to) first"
PRICE_PERIOD = "a price's validity must start, and end (if it ends) after it starts"

EXTRACTION_CALL = "requirement extraction of message {message_id} by {model}{fallback}"

MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000001")


# -- conversations -------------------------------------------------------------------------------------------


def conversation_start(
    *, customer: Customer, model: str, channel: str = Conversation.Channel.WEB, title: str = "", metadata=None
) -> Conversation:
    """A new active conversation of ``customer`` with the assistant ``model``."""
    if channel not in Conversation.Channel.values:
        raise InvalidInput(f"unknown channel {channel!r}; expected one of {', '.join(Conversation.Channel.values)}")
    if not model:
        raise InvalidInput("a conversation needs the assistant's model")
    return Conversation.objects.create(
        customer=customer, model=model, channel=channel, title=title[:200], metadata=metadata or {}
    )


def conversation_end(*, conversation: Conversation, status: str = Conversation.Status.COMPLETED) -> Conversation:
    """Close an active conversation as ``completed`` or ``abandoned``."""
    if status not in (Conversation.Status.COMPLETED, Conversation.Status.ABANDONED):
        raise InvalidInput("a conversation ends as completed or abandoned")
    with transaction.atomic():
        locked = Conversation.objects.select_for_update(no_key=True).get(pk=conversation.pk)
        if locked.status != Conversation.Status.ACTIVE:
            raise ConversationClosed(CANNOT_END.format(id=locked.pk, status=locked.status))
        locked.status = status
        locked.ended_at = timezone.now()
        locked.save(update_fields=["status", "ended_at"])
    return locked


def conversation_rate(
    *, conversation: Conversation, score: int, comment: str = "", source: str = Conversation.ScoreSource.USER
) -> Conversation:
    """Record the satisfaction score (1..5) with its comment and source; a later rating replaces an earlier one."""
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise InvalidInput(SATISFACTION_RANGE)
    if source not in Conversation.ScoreSource.values:
        raise InvalidInput(UNKNOWN_SCORE_SOURCE.format(source=source))
    Conversation.objects.filter(pk=conversation.pk).update(
        satisfaction_score=score, satisfaction_comment=comment, satisfaction_source=source
    )
    conversation.refresh_from_db()
    return conversation


# -- messages ------------------------------------------------------------------------------------------------


def model_price(model: str, *, at: dt.datetime | None = None) -> ModelPrice | None:
    """The price of ``model`` valid at ``at`` (by default the current transaction's time, which is the
    ``created_at`` a message written in it gets): of the ``model_prices`` rows whose pattern matches the name and
    whose period holds ``at``, the longest pattern; None for an unpriced model."""
    moment = at if at is not None else Now()
    return (
        ModelPrice.objects.filter(valid_from__lte=moment)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=moment))
        .alias(matches=RawSQL("%s ~ match_pattern", (model,), output_field=BooleanField()))
        .filter(matches=True)
        .order_by(Length("match_pattern").desc(), "-valid_from", "id")
        .first()
    )


def message_cost(
    *, model: str, prompt_tokens: int, completion_tokens: int, at: dt.datetime | None = None
) -> Decimal | None:
    """Cost in US dollars at the price valid at ``at`` (``model_price``), to the micro-dollar; None for an unpriced
    model (never 0: the message is then flagged ``unpriced``)."""
    price = model_price(model, at=at)
    if price is None:
        return None
    cost = (prompt_tokens * price.input_price + completion_tokens * price.output_price) / MILLION
    return cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def price_validate(
    *, match_pattern: str, input_price, output_price, valid_from, valid_to, price_id: int | None = None
) -> None:
    """Raise ``InvalidInput`` unless the price row is well formed: a pattern PostgreSQL accepts as a regular
    expression, prices >= 0 and a period that ends after it starts (the database's constraints, with their words)."""
    if not match_pattern:
        raise InvalidInput(PRICE_PATTERN_EMPTY)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT '' ~ %s", [match_pattern])
    except DatabaseError as error:
        raise InvalidInput(PRICE_PATTERN_INVALID.format(pattern=match_pattern)) from error
    if input_price is None or output_price is None or input_price < 0 or output_price < 0:
        raise InvalidInput(PRICE_NEGATIVE)
    if valid_from is None or (valid_to is not None and valid_to <= valid_from):
        raise InvalidInput(PRICE_PERIOD)
    overlapping = ModelPrice.objects.filter(match_pattern=match_pattern)
    if price_id is not None:
        overlapping = overlapping.exclude(pk=price_id)
    overlapping = overlapping.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=valid_from))
    if valid_to is not None:
        overlapping = overlapping.filter(valid_from__lt=valid_to)
    if overlapping.exists():
        raise InvalidInput(PRICE_OVERLAP.format(pattern=match_pattern))


def messages_reprice(*, model_pattern: str | None = None) -> int:
    """Give the unpriced messages a computed cost from the prices valid at their time (after an admin added the
    missing price); returns how many were priced. Each update goes through ``update_conversation_stats``, so the
    conversations' totals stay exact."""
    priced = 0
    with transaction.atomic():
        for message in ConversationMessage.objects.filter(unpriced=True).select_for_update(no_key=True):
            if model_pattern is not None and not re.search(model_pattern, message.model):
                continue
            computed = message_cost(
                model=message.model,
                prompt_tokens=message.prompt_tokens,
                completion_tokens=message.completion_tokens,
                at=message.created_at,
            )
            if computed is not None:
                ConversationMessage.objects.filter(pk=message.pk).update(computed_cost=computed, cost=computed)
                priced += 1
    return priced


def message_add(
    *,
    conversation: Conversation,
    role: str,
    content: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost: Decimal | None = None,
    model: str = "",
    latency_ms: int | None = None,
) -> ConversationMessage:
    """Append a message with its usage. ``cost`` given by the caller wins; otherwise it is computed from the
    configured price of ``model`` (the conversation's model when empty). Both are kept: ``given_cost`` and
    ``computed_cost``. Raises ``ConversationClosed`` unless the conversation is active (checked under the
    conversation's row lock by the trigger, so it holds against a concurrent expiry)."""
    if role not in ConversationMessage.Role.values:
        raise InvalidInput(UNKNOWN_ROLE.format(role=role))
    if prompt_tokens < 0 or completion_tokens < 0:
        raise InvalidInput(NEGATIVE_TOKENS)
    if cost is not None:
        cost = Decimal(str(cost))
        if not cost.is_finite() or cost < 0:
            raise InvalidInput(NEGATIVE_COST)
    if latency_ms is not None and latency_ms < 0:
        raise InvalidInput(NEGATIVE_LATENCY)
    if conversation.status != Conversation.Status.ACTIVE or conversation.deleted_at is not None:
        status = "deleted" if conversation.deleted_at else conversation.status
        raise ConversationClosed(CONVERSATION_CLOSED.format(id=conversation.pk, status=status))
    priced_model = model or conversation.model
    try:
        with transaction.atomic():
            # Priced inside the transaction: the price is the one valid at now(), the message's created_at.
            computed = message_cost(
                model=priced_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
            chosen = cost if cost is not None else computed
            return ConversationMessage.objects.create(
                conversation=conversation,
                role=role,
                content=content,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                given_cost=cost,
                computed_cost=computed,
                cost=chosen if chosen is not None else Decimal(0),
                model=priced_model,
                latency_ms=latency_ms,
            )
    except DatabaseError as error:
        if "messages can only be added to an active conversation" in str(error):
            conversation.refresh_from_db()
            status = "deleted" if conversation.deleted_at else conversation.status
            raise ConversationClosed(CONVERSATION_CLOSED.format(id=conversation.pk, status=status)) from error
        raise


# -- intents and extractions ---------------------------------------------------------------------------------


def _confidence(value) -> Decimal:
    confidence = Decimal(str(value))
    if not Decimal(0) <= confidence <= Decimal(1):
        raise InvalidInput(CONFIDENCE_RANGE)
    return confidence.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def _check_message(conversation: Conversation, message_id: int | None) -> None:
    if (
        message_id is not None
        and not ConversationMessage.objects.filter(pk=message_id, conversation_id=conversation.pk).exists()
    ):
        raise InvalidInput(WRONG_MESSAGE.format(message_id=message_id, conversation_id=conversation.pk))


def intent_record(
    *, conversation: Conversation, intent: str, confidence, message_id: int | None = None, entities=None
) -> ConversationIntent:
    """Record an intent detected in ``message_id`` of the conversation."""
    if intent not in INTENTS:
        raise InvalidInput(UNKNOWN_INTENT.format(intent=intent))
    confidence = _confidence(confidence)
    _check_message(conversation, message_id)
    return ConversationIntent.objects.create(
        conversation=conversation, message_id=message_id, intent=intent, confidence=confidence, entities=entities or {}
    )


def extraction_record(
    *,
    conversation: Conversation,
    requirement_type: str,
    value: str,
    confidence,
    source_message_id: int | None = None,
    action: str = "add",
) -> RequirementExtraction:
    """Record a requirement extracted from ``source_message_id`` of the conversation (unverified); ``action``
    says whether it adds, removes or replaces (see ``intake.manifests``)."""
    if requirement_type not in REQUIREMENT_TYPES:
        raise InvalidInput(UNKNOWN_REQUIREMENT_TYPE.format(kind=requirement_type))
    if action not in REQUIREMENT_ACTIONS:
        raise InvalidInput(UNKNOWN_ACTION.format(action=action))
    value = (value or "").strip()
    if not value:
        raise InvalidInput(EMPTY_VALUE)
    confidence = _confidence(confidence)
    _check_message(conversation, source_message_id)
    return RequirementExtraction.objects.create(
        conversation=conversation,
        source_message_id=source_message_id,
        requirement_type=requirement_type,
        value=value[:500],
        confidence=confidence,
        action=action,
    )


def conversation_turns(*, message: ConversationMessage) -> list[Turn]:
    """The conversation up to and including ``message``, in order, as an extractor sees it; ``message`` itself
    is the last turn and is read as the user's (the extraction is about it). Extraction-call records (role
    ``tool``) are left out."""
    earlier = (
        ConversationMessage.objects.filter(conversation_id=message.conversation_id)
        .filter(Q(created_at__lt=message.created_at) | Q(created_at=message.created_at, id__lt=message.pk))
        .exclude(role=ConversationMessage.Role.TOOL)
        .order_by("created_at", "id")
        .values_list("role", "content", "id")
    )
    return [Turn(role, content, pk) for role, content, pk in earlier] + [Turn("user", message.content, message.pk)]


def message_extract(
    *, message: ConversationMessage, extractor: ConversationExtractor | Extractor | None = None
) -> tuple[list[ConversationIntent], list[RequirementExtraction]]:
    """Run the extractor (the configured one by default; a version-1 one is adapted) on the conversation up to
    ``message`` and record the intents and requirement changes it found in ``message``, in one transaction. The
    extractor runs before the transaction opens, so a slow (LLM) extractor holds no lock. When the extraction
    called a model, that call is recorded too: a ``tool`` message with its tokens, latency and model, priced
    like any message (so the conversation's totals include what understanding it cost)."""
    chosen = as_conversation_extractor(extractor) if extractor is not None else get_extractor()
    result = chosen.extract_conversation(conversation_turns(message=message))
    conversation = message.conversation
    with transaction.atomic():
        intents = [
            intent_record(
                conversation=conversation,
                intent=found.intent,
                confidence=found.confidence,
                message_id=message.pk,
                entities=found.entities,
            )
            for found in result.intents
        ]
        extractions = [
            extraction_record(
                conversation=conversation,
                requirement_type=found.requirement_type,
                value=found.value,
                confidence=found.confidence,
                source_message_id=message.pk,
                action=found.action,
            )
            for found in result.requirements
        ]
        usage = result.usage
        if usage is not None:
            message_add(
                conversation=conversation,
                role=ConversationMessage.Role.TOOL,
                content=EXTRACTION_CALL.format(
                    message_id=message.pk,
                    model=usage.model,
                    fallback=" (fell back to rules)" if usage.fell_back else "",
                ),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                model=usage.model,
                latency_ms=usage.latency_ms,
            )
    return intents, extractions


def extraction_verify(
    *,
    extraction: RequirementExtraction,
    correct: bool,
    corrected_value: str | None = None,
    verified_by: str = "",
) -> RequirementExtraction:
    """Record a person's verdict: ``correct``; ``incorrect`` (no value); or ``corrected`` to ``corrected_value``."""
    if correct:
        verification, corrected_value = RequirementExtraction.Verification.CORRECT, None
    elif corrected_value is None:
        verification = RequirementExtraction.Verification.INCORRECT
    else:
        corrected_value = corrected_value.strip()
        if not corrected_value or corrected_value == extraction.value:
            raise InvalidInput(CORRECTED_VALUE_REQUIRED)
        verification = RequirementExtraction.Verification.CORRECTED
    RequirementExtraction.objects.filter(pk=extraction.pk).update(
        verification=verification,
        corrected_value=corrected_value,
        verified_at=timezone.now(),
        verified_by=verified_by[:150],
    )
    extraction.refresh_from_db()
    return extraction


# -- manifests -----------------------------------------------------------------------------------------------


def _effective_requirements(conversation: Conversation) -> list[Requirement]:
    requirements = []
    for extraction in conversation.extractions.order_by("created_at", "id"):
        verification = extraction.verification
        if verification == RequirementExtraction.Verification.INCORRECT:
            continue
        if verification == RequirementExtraction.Verification.UNVERIFIED and extraction.confidence < MIN_CONFIDENCE:
            continue
        value = extraction.value
        if verification == "corrected" and extraction.corrected_value is not None:  # never None then (a constraint)
            value = extraction.corrected_value
        requirements.append(
            Requirement(extraction.requirement_type, value, extraction.action, source=extraction.source_message_id)
        )
    return requirements


def _credentials(customer_id) -> list[Credential]:
    rows = RegistryCredential.objects.filter(
        customer_id=customer_id, status=RegistryCredential.Status.ACTIVE, deleted_at__isnull=True
    ).order_by("created_at", "id")
    return [Credential(id=str(c.pk), registry_type=c.registry_type, registry_url=c.registry_url) for c in rows]


def manifest_generate(*, conversation: Conversation) -> BuildManifest:
    """A draft manifest from the conversation's extractions (``intake.manifests``), as the next version; the open
    (draft or approved) one is superseded. When the open manifest already has the same content it is returned
    unchanged. Serialised per conversation by the conversation's row lock."""
    with transaction.atomic():
        # Lock first, so the extractions read and the version chosen are those of the latest committed state.
        Conversation.objects.select_for_update(no_key=True).filter(pk=conversation.pk).first()
        requirements = _effective_requirements(conversation)
        if not requirements:
            raise InvalidInput(NOTHING_TO_GENERATE.format(id=conversation.pk))
        manifest = manifest_from_requirements(requirements, credentials=_credentials(conversation.customer_id))
        validate_manifest(manifest)
        manifests = BuildManifest.objects.filter(conversation_id=conversation.pk)
        open_manifest = manifests.filter(status__in=["draft", "approved"]).first()
        if open_manifest is not None:
            if open_manifest.manifest == manifest:
                return open_manifest
            open_manifest.status = BuildManifest.Status.SUPERSEDED
            open_manifest.save(update_fields=["status"])
        latest = manifests.order_by("-version").values_list("version", flat=True).first() or 0
        return BuildManifest.objects.create(
            conversation=conversation,
            customer_id=conversation.customer_id,
            version=latest + 1,
            manifest=manifest,
            manifest_hash=manifest_hash(manifest),
        )


def manifest_approve(*, manifest: BuildManifest, approved_by: str = "") -> BuildManifest:
    """Approve a draft (validated against the schema again, in case it was edited)."""
    with transaction.atomic():
        locked = BuildManifest.objects.select_for_update(no_key=True).get(pk=manifest.pk)
        if locked.status != BuildManifest.Status.DRAFT:
            raise ManifestStateError(NOT_A_DRAFT.format(id=locked.pk, status=locked.status))
        validate_manifest(locked.manifest)
        locked.status = BuildManifest.Status.APPROVED
        locked.approved_at = timezone.now()
        locked.approved_by = approved_by[:150]
        locked.manifest_hash = manifest_hash(locked.manifest)
        locked.save(update_fields=["status", "approved_at", "approved_by", "manifest_hash"])
    return locked


def manifest_submit(*, manifest: BuildManifest, priority: int = 5) -> BuildManifest:
    """Submit an approved manifest to the build queue through ``builds.queue.services.build_enqueue`` (so the license,
    quota, duplicate and cache rules of ``enqueue_build`` apply) and record the build it became.

    Submitting a manifest already submitted returns it unchanged (same build). The same manifest already queued
    or running for the customer (from another conversation, say) becomes that same build. Raises
    ``ManifestStateError`` for a manifest that is not approved, and lets the build queue's ``LicenseUnusable``,
    ``QuotaExceeded`` and ``BuildInputError`` through; then nothing changes.
    """
    with transaction.atomic():
        locked = BuildManifest.objects.select_for_update(no_key=True).get(pk=manifest.pk)
        if locked.status == BuildManifest.Status.SUBMITTED:
            return locked
        if locked.status != BuildManifest.Status.APPROVED:
            raise ManifestStateError(NOT_APPROVED.format(id=locked.pk, status=locked.status))
        build: Build = build_enqueue(
            customer=locked.customer_id, manifest=locked.manifest, priority=priority, source="intake"
        )
        locked.status = BuildManifest.Status.SUBMITTED
        locked.build = build
        locked.submitted_at = timezone.now()
        locked.save(update_fields=["status", "build", "submitted_at"])
    return locked


def manifest_create(*, conversation: Conversation, manifest: dict) -> BuildManifest:
    """A draft from a hand-written manifest (an operator's edit), validated against the schema; it supersedes the
    open one."""
    validate_manifest(manifest)
    with transaction.atomic():
        Conversation.objects.select_for_update(no_key=True).filter(pk=conversation.pk).first()
        manifests = BuildManifest.objects.filter(conversation_id=conversation.pk)
        manifests.filter(status__in=["draft", "approved"]).update(status=BuildManifest.Status.SUPERSEDED)
        latest = manifests.order_by("-version").values_list("version", flat=True).first() or 0
        return BuildManifest.objects.create(
            conversation=conversation,
            customer_id=conversation.customer_id,
            version=latest + 1,
            manifest=manifest,
            manifest_hash=manifest_hash(manifest),
        )


def conversation_daily_fold(*, max_days: int = 31, refold_days: int = 0) -> int:
    """Fold closed days into ``conversation_daily`` and the intake views' rollups (``fold_conversation_daily``), one
    bounded batch of at most ``max_days`` new days and ``max_days`` dirty days per transaction until none is left;
    the last ``refold_days`` folded days are folded again in the first batch (none by default: the triggers mark
    every late change, so a run with nothing new folds nothing). Returns the days folded. Resumable: each batch
    commits its days with the new ``folded_through``."""
    total = 0
    refold = refold_days
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT fold_conversation_daily(%s, %s)", [max_days, refold])
            (folded,) = cursor.fetchone()
        total += folded
        if folded <= refold:  # nothing beyond the re-folded days: caught up
            return total
        refold = 0


def conversation_daily_backlog() -> int:
    """Days ``conversation_daily_fold`` would fold now: the dirty ones plus the closed days not folded yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM conversation_daily_dirty)"
            " + coalesce(((now() - interval '15 minutes') AT TIME ZONE 'UTC')::date - 1"
            " - (SELECT folded_through FROM conversation_daily_state WHERE id = 1), 0)"
        )
        return max(cursor.fetchone()[0], 0)
