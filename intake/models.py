"""AI intake: conversations and their messages, detected intents, extracted requirements, and the build
manifests generated from them (``conversations``, ``conversation_messages``, ``conversation_intents``,
``requirement_extractions``, ``build_manifests``).

``conversation_messages`` is append-mostly, high-volume and has no inbound foreign keys (intents and
extractions name their message by id), so it can become monthly partitions; message bodies stay out of its
indexes.
"""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from builds.models import HEX64, Build
from honua.triggers import update_updated_at_column
from licensing.models import Customer


def _uuid_pk():
    return models.UUIDField(primary_key=True, db_default=models.Func(function="gen_random_uuid"), editable=False)


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

    id = _uuid_pk()
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
        triggers = [update_updated_at_column()]
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

    class Meta:
        db_table = "conversation_messages"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="conv_messages_conv_idx")]
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
            models.CheckConstraint(
                condition=Q(latency_ms__isnull=True) | Q(latency_ms__gte=0), name="conv_messages_latency_nonneg"
            ),
        ]


INTENTS = ["new_build", "modify_build", "question", "status", "cancel", "other"]
REQUIREMENT_TYPES = ["base_image", "language", "package", "architecture", "registry", "env", "port", "other"]


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
    confidence = models.DecimalField(max_digits=4, decimal_places=3)
    verification = models.CharField(max_length=16, choices=Verification.choices, default=Verification.UNVERIFIED)
    corrected_value = models.CharField(max_length=500, null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "requirement_extractions"
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "requirement_type"], name="req_extractions_conv_idx"),
            models.Index(fields=["requirement_type", "verification"], name="req_extractions_type_idx"),
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
        ]


class BuildManifest(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        APPROVED = "approved"
        SUBMITTED = "submitted"
        SUPERSEDED = "superseded"

    id = _uuid_pk()
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
        triggers = [update_updated_at_column()]
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
            models.CheckConstraint(condition=Q(manifest_hash__regex=HEX64), name="build_manifests_hash_hex"),
            models.CheckConstraint(
                condition=~Q(status="submitted") | Q(build__isnull=False, submitted_at__isnull=False),
                name="build_manifests_submitted_has_build",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["approved", "submitted"]) | Q(approved_at__isnull=False),
                name="build_manifests_approved_at",
            ),
        ]
