"""AI intake: conversations and their messages, detected intents, extracted requirements, and the build
manifests generated from them (``conversations``, ``conversation_messages``, ``conversation_intents``,
``requirement_extractions``, ``build_manifests``).

``conversation_messages`` is append-mostly, high-volume and has no inbound foreign keys (intents and
extractions name their message by id), so it can become monthly partitions; message bodies stay out of its
indexes.
"""

import pgtrigger
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, Now
from django.db.models.lookups import Exact

from builds.models import HEX64, TODAY_STARTS, AllOf, Build, FunctionTrigger
from honua.fields import uuid_primary_key
from honua.triggers import update_updated_at_column
from licensing.models import Customer


class Conversation(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"
        ABANDONED = "abandoned"
        EXPIRED = "expired"

    class Channel(models.TextChoices):
        WEB = "web"
        CLI = "cli", "CLI"
        SLACK = "slack"
        API = "api", "API"

    class ScoreSource(models.TextChoices):
        USER = "user"
        OPERATOR = "operator"
        MODEL = "model"

    id = uuid_primary_key()
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="conversations")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WEB)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    model = models.CharField(max_length=100, help_text="The assistant model, e.g. claude-sonnet-4.")
    title = models.CharField(max_length=200, blank=True, default="")
    started_at = models.DateTimeField(db_default=Now())
    last_message_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Totals kept exact by the update_conversation_stats trigger.
    message_count = models.IntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    total_cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    satisfaction_score = models.SmallIntegerField(null=True, blank=True)
    satisfaction_comment = models.TextField(blank=True, default="")
    satisfaction_source = models.CharField(max_length=16, choices=ScoreSource.choices, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "conversations"
        triggers = [
            update_updated_at_column(),
            # The dashboard's conversations per day (ConversationDaily): a change to a conversation of a folded day
            # marks the day (intake/sql/0011_conversation_daily.sql). Today's conversations, and every change that
            # touches none of the figures (status, last message), do not get past the WHEN.
            # The same days hold conversation_model_daily (conversation_performance_summary), which also counts
            # messages per model; a delete or restore also marks the days of the conversation's intents and
            # extractions (intent_daily, extraction_daily: intake/sql/0012_intake_view_rollups.sql).
            FunctionTrigger(
                name="conversation_daily_mark_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition("NEW.started_at < date_trunc('day', now(), 'UTC')"),
                execute="conversation_daily_mark",
            ),
            FunctionTrigger(
                name="conversation_daily_mark_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange(
                    "started_at",
                    "deleted_at",
                    "prompt_tokens",
                    "completion_tokens",
                    "total_cost",
                    "satisfaction_score",
                    "message_count",
                    "model",
                ),
                execute="conversation_daily_mark",
            ),
            FunctionTrigger(
                name="conversation_daily_mark_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                condition=pgtrigger.Q(old__deleted_at__isnull=True),
                execute="conversation_daily_mark",
            ),
            FunctionTrigger(
                name="conversation_daily_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="conversation_daily_reset",
            ),
        ]
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["customer", "-started_at"], name="conversations_customer_idx"),
            models.Index(
                fields=["last_message_at"],
                name="conversations_active_idle_idx",
                condition=Q(status="active", deleted_at__isnull=True),
            ),
            models.Index(fields=["started_at", "model"], name="conversations_day_model_idx"),
            models.Index(fields=["status", "-started_at"], name="conversations_status_idx"),
            # The deleted conversations only: what the intake views' figures leave out of a day's intents and
            # extractions (intake/sql/0012_intake_view_rollups.sql).
            models.Index(fields=["id"], name="conversations_deleted_idx", condition=Q(deleted_at__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "completed", "abandoned", "expired"]),
                name="conversations_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(channel__in=["web", "cli", "slack", "api"]), name="conversations_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(satisfaction_score__isnull=True) | Q(satisfaction_score__gte=1, satisfaction_score__lte=5),
                name="conversations_satisfaction_range",
            ),
            models.CheckConstraint(
                condition=Q(satisfaction_source__isnull=True)
                | Q(satisfaction_source__in=["user", "operator", "model"]),
                name="conversations_score_source_valid",
            ),
            models.CheckConstraint(
                condition=Q(message_count__gte=0, prompt_tokens__gte=0, completion_tokens__gte=0, total_cost__gte=0),
                name="conversations_totals_nonneg",
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"conversation {self.pk}"


# The seed's update_conversation_stats. The conversation row is locked first (FOR NO KEY UPDATE, which does not
# conflict with the FOR KEY SHARE lock the foreign-key check of a message insert takes), so concurrent writers
# into one conversation queue on that row and each total is computed from the latest committed values; the
# max(created_at) look-ups run after the lock, so they see every message committed before it.
UPDATE_CONVERSATION_STATS = """
    IF TG_OP = 'UPDATE' THEN
        IF NEW.conversation_id <> OLD.conversation_id THEN
            RAISE EXCEPTION 'message % cannot move to another conversation', OLD.id USING ERRCODE = 'P0001';
        END IF;
        IF (NEW.prompt_tokens, NEW.completion_tokens, NEW.cost, NEW.created_at)
           IS NOT DISTINCT FROM (OLD.prompt_tokens, OLD.completion_tokens, OLD.cost, OLD.created_at) THEN
            RETURN NULL;
        END IF;
    END IF;

    SELECT c.status, c.deleted_at INTO v_status, v_deleted
    FROM conversations c WHERE c.id = COALESCE(NEW.conversation_id, OLD.conversation_id)
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;  -- the conversation itself is being deleted (cascade)
    END IF;

    IF TG_OP = 'INSERT' THEN
        -- A message whose created_at moved it to another month's partition arrives here as a DELETE then an
        -- INSERT (partition_row_moving): counted out and in again, but not a new message.
        IF (v_status <> 'active' OR v_deleted IS NOT NULL) AND NOT partition_row_moving() THEN
            RAISE EXCEPTION 'conversation % is %: messages can only be added to an active conversation',
                NEW.conversation_id, CASE WHEN v_deleted IS NOT NULL THEN 'deleted' ELSE v_status END
                USING ERRCODE = 'P0001';
        END IF;
        UPDATE conversations c SET
            message_count = c.message_count + 1,
            prompt_tokens = c.prompt_tokens + NEW.prompt_tokens,
            completion_tokens = c.completion_tokens + NEW.completion_tokens,
            total_cost = c.total_cost + NEW.cost,
            last_message_at = GREATEST(c.last_message_at, NEW.created_at)
        WHERE c.id = NEW.conversation_id;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE conversations c SET
            prompt_tokens = c.prompt_tokens + NEW.prompt_tokens - OLD.prompt_tokens,
            completion_tokens = c.completion_tokens + NEW.completion_tokens - OLD.completion_tokens,
            total_cost = c.total_cost + NEW.cost - OLD.cost,
            last_message_at = CASE WHEN NEW.created_at IS DISTINCT FROM OLD.created_at
                THEN (SELECT max(m.created_at) FROM conversation_messages m WHERE m.conversation_id = c.id)
                ELSE c.last_message_at END
        WHERE c.id = NEW.conversation_id;
    ELSE
        UPDATE conversations c SET
            message_count = c.message_count - 1,
            prompt_tokens = c.prompt_tokens - OLD.prompt_tokens,
            completion_tokens = c.completion_tokens - OLD.completion_tokens,
            total_cost = c.total_cost - OLD.cost,
            last_message_at = CASE WHEN OLD.created_at >= c.last_message_at
                THEN (SELECT max(m.created_at) FROM conversation_messages m WHERE m.conversation_id = c.id)
                ELSE c.last_message_at END
        WHERE c.id = OLD.conversation_id;
    END IF;
    RETURN NULL;
"""


class ConversationDaily(models.Model):
    """The dashboard's conversations of one closed UTC day (issue 15), as ``console.selectors.conversation_activity``
    reads ``conversations``: those started that day and not deleted, their tokens (prompt + completion) and cost,
    and the scored ones' satisfaction sum and count (their numeric quotient is ``avg``'s).
    ``fold_conversation_daily()`` (hourly) folds closed days in order, a bounded number per call, and re-folds the
    last days and every day marked in ``ConversationDailyDirty`` (intake/sql/0011_conversation_daily.sql)."""

    day = models.DateField(primary_key=True)
    conversations = models.BigIntegerField()
    tokens = models.BigIntegerField()
    cost = models.DecimalField(max_digits=30, decimal_places=6)
    satisfaction_sum = models.BigIntegerField(help_text="Sum of the scored conversations' satisfaction.")
    satisfaction_count = models.BigIntegerField(help_text="Scored conversations (the average is sum / count).")
    folded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "conversation_daily"


class ConversationDailyState(models.Model):
    """The single row saying up to which UTC day (inclusive) ``conversation_daily`` is folded; NULL: nothing yet."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    folded_through = models.DateField(null=True, blank=True)

    class Meta:
        db_table = "conversation_daily_state"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="conversation_daily_state_one_row")]


class ConversationDailyDirty(models.Model):
    """A folded day whose conversations changed since it was folded: read live until it is re-folded."""

    day = models.DateField(primary_key=True)
    marked_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "conversation_daily_dirty"


class ConversationModelDaily(models.Model):
    """``conversation_performance_summary``'s row of one closed UTC day and model, as the view computes it from
    ``conversations`` (intake/sql/0004_intake_views.sql): the conversations started that day and not deleted. Folded
    with ``ConversationDaily`` (same state, same dirty days) by ``fold_conversation_daily()``; the view reads these
    rows for the folded days that are not dirty and the conversations themselves for the rest
    (intake/sql/0012_intake_view_rollups.sql)."""

    pk = models.CompositePrimaryKey("day", "model")
    day = models.DateField()
    model = models.CharField(max_length=100)
    conversations = models.IntegerField()
    messages = models.BigIntegerField()
    prompt_tokens = models.BigIntegerField()
    completion_tokens = models.BigIntegerField()
    total_tokens = models.BigIntegerField()
    total_cost = models.DecimalField(max_digits=30, decimal_places=6)
    rated_conversations = models.IntegerField()
    avg_satisfaction = models.DecimalField(max_digits=4, decimal_places=2, null=True)
    submitted_conversations = models.IntegerField()
    submitted_share = models.DecimalField(max_digits=5, decimal_places=4)
    folded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "conversation_model_daily"


class IntentDaily(models.Model):
    """``intent_analytics``'s row of one closed UTC day (of the intent's ``created_at``) and intent: the intents of
    conversations not deleted. Folded with ``ConversationDaily`` by ``fold_conversation_daily()``."""

    pk = models.CompositePrimaryKey("day", "intent")
    day = models.DateField()
    intent = models.CharField(max_length=32)
    intents = models.IntegerField()
    conversations = models.IntegerField()
    avg_confidence = models.DecimalField(max_digits=4, decimal_places=3)
    folded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "intent_daily"


class ExtractionDaily(models.Model):
    """The production extractions of one closed UTC day (of the extraction's ``created_at``) and requirement type, of
    conversations not deleted, as ``extraction_accuracy`` sums them over all days: counts per verification and the
    confidence sum (its average is sum / extractions). Folded with ``ConversationDaily``."""

    pk = models.CompositePrimaryKey("day", "requirement_type")
    day = models.DateField()
    requirement_type = models.CharField(max_length=32)
    extractions = models.BigIntegerField()
    verified = models.BigIntegerField()
    correct = models.BigIntegerField()
    corrected = models.BigIntegerField()
    incorrect = models.BigIntegerField()
    confidence_sum = models.DecimalField(max_digits=24, decimal_places=3)
    folded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "extraction_daily"


class ConversationMessage(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    prompt_tokens = models.IntegerField(default=0)
    completion_tokens = models.IntegerField(default=0)
    # cost is what counts: the caller's given_cost when it sent one, else computed_cost from configured prices.
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    given_cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    computed_cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    model = models.CharField(max_length=100, blank=True, default="")
    latency_ms = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    # Usage that no price covers (no cost given, none computed): its cost reads 0 but is not known to be 0. Kept by
    # the database from the row itself, so it can never disagree with the costs beside it.
    unpriced = models.GeneratedField(
        expression=Q(given_cost__isnull=True, computed_cost__isnull=True)
        & (Q(prompt_tokens__gt=0) | Q(completion_tokens__gt=0)),
        output_field=models.BooleanField(),
        db_persist=True,
    )

    class Meta:
        db_table = "conversation_messages"
        triggers = [
            pgtrigger.Trigger(
                name="update_conversation_stats",
                when=pgtrigger.After,
                operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete,
                declare=[("v_status", "text"), ("v_deleted", "timestamptz")],
                func=UPDATE_CONVERSATION_STATS,
            )
        ]
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="conv_messages_conv_idx"),
            # The dashboard's count of unpriced messages reads only these (few, one hopes) rows.
            models.Index(fields=["created_at"], name="conv_messages_unpriced_idx", condition=Q(unpriced=True)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=["system", "user", "assistant", "tool"]), name="conv_messages_role_valid"
            ),
            models.CheckConstraint(
                condition=Q(prompt_tokens__gte=0, completion_tokens__gte=0), name="conv_messages_tokens_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(cost__gte=0)
                & (Q(given_cost__isnull=True) | Q(given_cost__gte=0))
                & (Q(computed_cost__isnull=True) | Q(computed_cost__gte=0)),
                name="conv_messages_cost_nonneg",
            ),
            # A caller-given cost wins over the one computed from configured prices; both are kept.
            models.CheckConstraint(
                condition=Q(
                    cost=Coalesce(F("given_cost"), F("computed_cost"), Value(0), output_field=models.DecimalField())
                ),
                name="conv_messages_cost_given_wins",
            ),
            models.CheckConstraint(
                condition=Q(latency_ms__isnull=True) | Q(latency_ms__gte=0), name="conv_messages_latency_nonneg"
            ),
        ]

    def __str__(self) -> str:  # the admin's inline titles
        return f"{self.role} message {self.pk}"


class ModelPrice(models.Model):
    """A model's token price for a period (after Langfuse's model definitions): the messages of a model whose name
    matches ``match_pattern`` (a PostgreSQL regular expression, e.g. ``^claude-sonnet-4``) and that were written in
    ``[valid_from, valid_to)`` cost ``input_price`` / ``output_price`` US dollars per million prompt / completion
    tokens. When several patterns match, the longest wins (the most specific). One pattern's periods never overlap
    (an exclusion constraint over text and time ranges)."""

    id = models.BigAutoField(primary_key=True)
    match_pattern = models.CharField(
        max_length=200, help_text="A regular expression on the model name, e.g. ^claude-sonnet-4 (longest wins)."
    )
    input_price = models.DecimalField(max_digits=12, decimal_places=6, help_text="US$ per million prompt tokens.")
    output_price = models.DecimalField(max_digits=12, decimal_places=6, help_text="US$ per million completion tokens.")
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Exclusive; empty while the price holds.")
    source = models.CharField(max_length=300, help_text="Where the price comes from (a page and the date read).")
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "model_prices"
        ordering = ["match_pattern", "-valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(input_price__gte=0, output_price__gte=0), name="model_prices_prices_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")), name="model_prices_period_valid"
            ),
            models.CheckConstraint(condition=~Q(match_pattern=""), name="model_prices_pattern_not_empty"),
            models.CheckConstraint(condition=~Q(source=""), name="model_prices_source_not_empty"),
            ExclusionConstraint(
                name="model_prices_no_overlap",
                # The pattern as the single-point range [p, p] (intake/sql/0007_text_range.sql): [p, p] && [q, q]
                # exactly when p = q, without the btree_gist extension the project does without.
                expressions=[
                    (
                        models.Func(
                            F("match_pattern"),
                            F("match_pattern"),
                            Value("[]"),
                            function="intake_text_range",
                            output_field=models.TextField(),
                        ),
                        RangeOperators.OVERLAPS,
                    ),
                    (
                        models.Func(
                            F("valid_from"),
                            F("valid_to"),
                            Value("[)"),
                            function="tstzrange",
                            output_field=DateTimeRangeField(),
                        ),
                        RangeOperators.OVERLAPS,
                    ),
                ],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.match_pattern} from {self.valid_from:%Y-%m-%d}"


class ExtractionEvaluation(models.Model):
    """One run of ``manage.py evaluate_extractor``: per split and requirement type, the true positives, false
    positives and false negatives of an extractor on the evaluation set (``intake/evaluation/``). Kept apart from
    ``requirement_extractions``, which hold production data and people's verdicts; ``extraction_accuracy`` shows the
    latest run beside them."""

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField()
    extractor = models.CharField(max_length=200)
    split = models.CharField(max_length=8)
    requirement_type = models.CharField(max_length=32)
    true_positives = models.IntegerField()
    false_positives = models.IntegerField()
    false_negatives = models.IntegerField()
    cases = models.IntegerField()
    exact_cases = models.IntegerField()
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "extraction_evaluations"
        ordering = ["-created_at", "split", "requirement_type"]
        indexes = [models.Index(fields=["-created_at"], name="extraction_evals_time_idx")]
        constraints = [
            models.UniqueConstraint(fields=["run_id", "split", "requirement_type"], name="extraction_evals_uniq"),
            models.CheckConstraint(condition=Q(split__in=["dev", "test"]), name="extraction_evals_split_valid"),
            models.CheckConstraint(
                condition=Q(true_positives__gte=0, false_positives__gte=0, false_negatives__gte=0, cases__gte=0)
                & Q(exact_cases__gte=0, exact_cases__lte=F("cases")),
                name="extraction_evals_counts_valid",
            ),
        ]


INTENTS = ["new_build", "modify_build", "question", "status", "cancel", "other"]
REQUIREMENT_TYPES = ["base_image", "language", "package", "architecture", "registry", "env", "port", "other"]
# What an extraction does to the requirements before it: add its value (the default); remove it; or replace every
# earlier value of its type (the extractions of one message and type that replace together form the new set).
REQUIREMENT_ACTIONS = ["add", "remove", "replace"]


class ConversationIntent(models.Model):
    class Intent(models.TextChoices):
        NEW_BUILD = "new_build"
        MODIFY_BUILD = "modify_build"
        QUESTION = "question"
        STATUS = "status"
        CANCEL = "cancel"
        OTHER = "other"

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="intents")
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The message it was detected in.")
    intent = models.CharField(max_length=32, choices=Intent.choices)
    confidence = models.DecimalField(max_digits=4, decimal_places=3)
    entities = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "conversation_intents"
        triggers = [
            # A change that can touch a folded day's intent_daily marks the day
            # (intake/sql/0012_intake_view_rollups.sql); rows of today (the intake's own writes) do not get past
            # the WHEN.
            FunctionTrigger(
                name="intent_daily_mark_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition(f"NEW.created_at < {TODAY_STARTS}"),
                execute="intent_daily_mark",
            ),
            FunctionTrigger(
                name="intent_daily_mark_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange("created_at", "intent", "confidence", "conversation_id"),
                execute="intent_daily_mark",
            ),
            FunctionTrigger(
                name="intent_daily_mark_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                execute="intent_daily_mark",
            ),
            FunctionTrigger(
                name="intent_daily_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="conversation_daily_reset",
            ),
        ]
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="conv_intents_conv_idx"),
            models.Index(fields=["created_at", "intent"], name="conv_intents_time_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(intent__in=INTENTS), name="conv_intents_intent_valid"),
            models.CheckConstraint(
                condition=Q(confidence__gte=0, confidence__lte=1), name="conv_intents_confidence_range"
            ),
        ]

    def __str__(self) -> str:  # the admin's inline titles
        return f"intent {self.intent}"


class RequirementExtraction(models.Model):
    class RequirementType(models.TextChoices):
        BASE_IMAGE = "base_image"
        LANGUAGE = "language"
        PACKAGE = "package"
        ARCHITECTURE = "architecture"
        REGISTRY = "registry"
        ENV = "env", "Environment variable"
        PORT = "port"
        OTHER = "other"

    class Verification(models.TextChoices):
        UNVERIFIED = "unverified"
        CORRECT = "correct"
        INCORRECT = "incorrect"
        CORRECTED = "corrected"

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="extractions")
    source_message_id = models.BigIntegerField(null=True, blank=True)
    requirement_type = models.CharField(max_length=32, choices=RequirementType.choices)
    value = models.CharField(max_length=500)
    action = models.CharField(
        max_length=8, choices=[(a, a) for a in REQUIREMENT_ACTIONS], default="add", db_default="add"
    )
    confidence = models.DecimalField(max_digits=4, decimal_places=3)
    verification = models.CharField(max_length=16, choices=Verification.choices, default=Verification.UNVERIFIED)
    corrected_value = models.CharField(max_length=500, null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "requirement_extractions"
        triggers = [
            # A change that can touch a folded day's extraction_daily marks the day
            # (intake/sql/0012_intake_view_rollups.sql); rows of today (the intake's own writes) do not get past
            # the WHEN.
            FunctionTrigger(
                name="extraction_daily_mark_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition(f"NEW.created_at < {TODAY_STARTS}"),
                execute="extraction_daily_mark",
            ),
            FunctionTrigger(
                name="extraction_daily_mark_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=pgtrigger.AnyChange(
                    "created_at", "requirement_type", "verification", "confidence", "conversation_id"
                ),
                execute="extraction_daily_mark",
            ),
            FunctionTrigger(
                name="extraction_daily_mark_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                execute="extraction_daily_mark",
            ),
            FunctionTrigger(
                name="extraction_daily_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="conversation_daily_reset",
            ),
        ]
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "requirement_type"], name="req_extractions_conv_idx"),
            models.Index(fields=["requirement_type", "verification"], name="req_extractions_type_idx"),
            # extraction_accuracy reads the days not folded (today, dirty days) by created_at.
            models.Index(fields=["created_at"], name="req_extractions_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(requirement_type__in=REQUIREMENT_TYPES), name="req_extractions_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(verification__in=["unverified", "correct", "incorrect", "corrected"]),
                name="req_extractions_verification_valid",
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0, confidence__lte=1), name="req_extractions_confidence_range"
            ),
            models.CheckConstraint(
                condition=~Q(verification="corrected") | Q(corrected_value__isnull=False),
                name="req_extractions_corrected_has_value",
            ),
            models.CheckConstraint(condition=~Q(value=""), name="req_extractions_value_not_empty"),
            models.CheckConstraint(condition=Q(action__in=REQUIREMENT_ACTIONS), name="req_extractions_action_valid"),
        ]

    def __str__(self) -> str:  # the admin's inline titles
        return f"{self.requirement_type}: {self.value}"


class BuildManifest(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        APPROVED = "approved"
        SUBMITTED = "submitted"
        SUPERSEDED = "superseded"

    id = uuid_primary_key()
    conversation = models.ForeignKey(Conversation, on_delete=models.PROTECT, related_name="manifests")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="build_manifests")
    version = models.IntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    manifest = models.JSONField()
    manifest_hash = models.CharField(max_length=64)
    build = models.ForeignKey(Build, null=True, blank=True, on_delete=models.SET_NULL, related_name="manifests")
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.CharField(max_length=150, blank=True, default="")
    submitted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "build_manifests"
        triggers = [
            update_updated_at_column(),
            # A conversation's submission counts on its start day in conversation_model_daily: a manifest becoming
            # submitted (or no longer, or deleted) marks that day when it is folded (0012_intake_view_rollups.sql).
            FunctionTrigger(
                name="conversation_submitted_mark_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Q(new__status="submitted"),
                execute="conversation_submitted_mark",
            ),
            FunctionTrigger(
                name="conversation_submitted_mark_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=AllOf(
                    pgtrigger.Condition("OLD.status = 'submitted' OR NEW.status = 'submitted'"),
                    pgtrigger.AnyChange("status", "conversation_id"),
                ),
                execute="conversation_submitted_mark",
            ),
            FunctionTrigger(
                name="conversation_submitted_mark_delete",
                when=pgtrigger.After,
                operation=pgtrigger.Delete,
                condition=pgtrigger.Q(old__status="submitted"),
                execute="conversation_submitted_mark",
            ),
            FunctionTrigger(
                name="conversation_submitted_truncate",
                when=pgtrigger.After,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                execute="conversation_daily_reset",
            ),
        ]
        ordering = ["conversation", "-version"]
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="build_manifests_customer_idx"),
            models.Index(fields=["manifest_hash"], name="build_manifests_hash_idx"),
            models.Index(fields=["build"], name="build_manifests_build_idx", condition=Q(build__isnull=False)),
        ]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "version"], name="build_manifests_conv_version_uniq"),
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status__in=["draft", "approved"]),
                name="build_manifests_one_open_per_conv",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "approved", "submitted", "superseded"]),
                name="build_manifests_status_valid",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="build_manifests_version_pos"),
            models.CheckConstraint(
                condition=Exact(
                    models.Func(F("manifest"), function="jsonb_typeof", output_field=models.TextField()), "object"
                )
                & Q(manifest__has_keys=["schema_version", "architectures"]),
                name="build_manifests_manifest_object",
            ),
            models.CheckConstraint(condition=Q(manifest_hash__regex=HEX64), name="build_manifests_hash_hex"),
            # The build cache's canonical hash (SQL manifest_hash, builds/sql/0003_cache.sql), so it always matches.
            models.CheckConstraint(
                condition=Q(manifest_hash=models.Func(F("manifest"), function="manifest_hash")),
                name="build_manifests_hash_canonical",
            ),
            models.CheckConstraint(
                condition=~Q(status="submitted") | Q(build__isnull=False, submitted_at__isnull=False),
                name="build_manifests_submitted_has_build",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["approved", "submitted"]) | Q(approved_at__isnull=False),
                name="build_manifests_approved_at",
            ),
        ]

    def __str__(self) -> str:
        return f"manifest v{self.version} ({self.status})"


# -- Read-only models over the SQL views (intake/sql/0004_intake_views.sql) ------------------------------------


class ActiveConversation(models.Model):
    id = models.UUIDField(primary_key=True)
    customer = models.ForeignKey(Customer, on_delete=models.DO_NOTHING, related_name="+")
    customer_name = models.CharField(max_length=200)
    channel = models.CharField(max_length=16)
    model = models.CharField(max_length=100)
    title = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    last_message_at = models.DateTimeField(null=True)
    idle_for = models.DurationField()
    message_count = models.IntegerField()
    prompt_tokens = models.BigIntegerField()
    completion_tokens = models.BigIntegerField()
    total_cost = models.DecimalField(max_digits=14, decimal_places=6)
    open_manifest_id = models.UUIDField(null=True)
    open_manifest_version = models.IntegerField(null=True)
    open_manifest_status = models.CharField(max_length=16, null=True)

    class Meta:
        managed = False
        db_table = "active_conversations"
        ordering = ["-last_message_at"]


class ConversationPerformanceSummary(models.Model):
    id = models.TextField(primary_key=True, help_text="day/model")
    day = models.DateField()
    model = models.CharField(max_length=100)
    conversations = models.IntegerField()
    messages = models.BigIntegerField()
    prompt_tokens = models.BigIntegerField()
    completion_tokens = models.BigIntegerField()
    total_tokens = models.BigIntegerField()
    total_cost = models.DecimalField(max_digits=20, decimal_places=6)
    rated_conversations = models.IntegerField()
    avg_satisfaction = models.DecimalField(max_digits=4, decimal_places=2, null=True)
    submitted_conversations = models.IntegerField()
    submitted_share = models.DecimalField(max_digits=5, decimal_places=4)

    class Meta:
        managed = False
        db_table = "conversation_performance_summary"
        ordering = ["-day", "model"]
        verbose_name_plural = "conversation performance summary"


class IntentAnalytics(models.Model):
    id = models.TextField(primary_key=True, help_text="day/intent")
    day = models.DateField()
    intent = models.CharField(max_length=32)
    intents = models.IntegerField()
    conversations = models.IntegerField()
    avg_confidence = models.DecimalField(max_digits=4, decimal_places=3)

    class Meta:
        managed = False
        db_table = "intent_analytics"
        ordering = ["-day", "intent"]
        verbose_name_plural = "intent analytics"


class ExtractionAccuracy(models.Model):
    requirement_type = models.CharField(max_length=32, primary_key=True)
    extractions = models.IntegerField()
    verified = models.IntegerField()
    correct = models.IntegerField()
    corrected = models.IntegerField()
    incorrect = models.IntegerField()
    verified_share = models.DecimalField(max_digits=5, decimal_places=4)
    precision = models.DecimalField(max_digits=5, decimal_places=4, null=True)
    avg_confidence = models.DecimalField(max_digits=4, decimal_places=3, null=True)
    # The latest evaluation run on the held-out split (extraction_evaluations), beside the people's verdicts.
    evaluated_at = models.DateTimeField(null=True)
    evaluation_extractor = models.CharField(max_length=200, null=True)
    evaluation_precision = models.DecimalField(max_digits=5, decimal_places=4, null=True)
    evaluation_recall = models.DecimalField(max_digits=5, decimal_places=4, null=True)
    evaluation_f1 = models.DecimalField(max_digits=5, decimal_places=4, null=True)

    class Meta:
        managed = False
        db_table = "extraction_accuracy"
        ordering = ["requirement_type"]
        verbose_name_plural = "extraction accuracy"
