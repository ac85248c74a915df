"""Intake admin: conversations with their transcript, intents, extractions and manifests inline; manifests with
their build; extractions with verification actions; read-only admins over the four SQL views. Actions call
``intake.services``; totals are never edited by hand (the trigger keeps them)."""

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from honua.admin_utils import ReadOnlyAdminMixin, audit_admin_action
from intake import services
from intake.models import (
    ActiveConversation,
    BuildManifest,
    Conversation,
    ConversationIntent,
    ConversationMessage,
    ConversationPerformanceSummary,
    ExtractionAccuracy,
    ExtractionEvaluation,
    IntentAnalytics,
    ModelPrice,
    RequirementExtraction,
)

STATUS_COLOURS = {
    "active": "#2e7d32",
    "completed": "#1565c0",
    "abandoned": "#757575",
    "expired": "#ef6c00",
    "draft": "#757575",
    "approved": "#1565c0",
    "submitted": "#2e7d32",
    "superseded": "#9e9e9e",
}


def badge(status: str):
    colour = STATUS_COLOURS.get(status, "#616161")
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 6px;border-radius:8px">{}</span>', colour, status
    )


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MessageInline(ReadOnlyInline):
    model = ConversationMessage
    fields = ("created_at", "role", "short_content", "prompt_tokens", "completion_tokens", "cost", "cost_source")
    # cost_source says "unpriced" for usage no price covered (its 0 is not a real cost).
    readonly_fields = fields
    verbose_name_plural = "transcript"

    @admin.display(description="content")
    def short_content(self, message):
        return Truncator(message.content).chars(300)

    @admin.display(description="cost from")
    def cost_source(self, message):
        if message.given_cost is not None:
            return "caller"
        if message.computed_cost is not None:
            return "prices"
        return "unpriced" if message.unpriced else "-"


class IntentInline(ReadOnlyInline):
    model = ConversationIntent
    fields = ("created_at", "message_id", "intent", "confidence", "entities")
    readonly_fields = fields


class ExtractionInline(ReadOnlyInline):
    model = RequirementExtraction
    fields = (
        "source_message_id",
        "requirement_type",
        "action",
        "value",
        "confidence",
        "verification",
        "corrected_value",
    )
    readonly_fields = fields


class ManifestInline(ReadOnlyInline):
    model = BuildManifest
    fields = ("version", "status", "manifest_hash", "build", "approved_at", "submitted_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "customer",
        "status_badge",
        "model",
        "channel",
        "message_count",
        "total_tokens",
        "total_cost",
        "satisfaction_score",
        "started_at",
        "last_message_at",
    )
    list_filter = ("status", "model", "satisfaction_score", "channel", "started_at")
    search_fields = ("title", "customer__name", "id")
    date_hierarchy = "started_at"
    list_select_related = ("customer",)
    readonly_fields = (
        "id",
        "customer",
        "status",
        "model",
        "channel",
        "started_at",
        "last_message_at",
        "ended_at",
        "message_count",
        "prompt_tokens",
        "completion_tokens",
        "total_cost",
        "satisfaction_score",
        "satisfaction_comment",
        "satisfaction_source",
        "created_at",
        "updated_at",
    )
    # Status changes go through the actions (services); only the title, metadata and soft delete are edited here.
    fields = ("id", "title", *readonly_fields[1:], "metadata", "deleted_at")
    inlines = (MessageInline, IntentInline, ExtractionInline, ManifestInline)
    actions = ("generate_manifest", "mark_abandoned")

    def has_add_permission(self, request):
        return False  # conversations start through the intake service

    @admin.display(description="status", ordering="status")
    def status_badge(self, conversation):
        return badge(conversation.status)

    @admin.display(description="tokens")
    def total_tokens(self, conversation):
        return conversation.prompt_tokens + conversation.completion_tokens

    @admin.action(description="Generate a manifest from the extractions", permissions=["change"])
    def generate_manifest(self, request, queryset):
        done = 0
        for conversation in queryset:
            try:
                manifest = services.manifest_generate(conversation=conversation)
                done += 1
            except services.IntakeError as error:
                self.message_user(request, str(error), messages.WARNING)
                continue
            audit_admin_action(request, conversation, f"Generate manifest: {manifest} ({manifest.pk}).")
        self.message_user(request, f"{done} manifest(s) generated.", messages.SUCCESS)

    @admin.action(description="Mark abandoned (active ones only)", permissions=["change"])
    def mark_abandoned(self, request, queryset):
        active = queryset.filter(status=Conversation.Status.ACTIVE)
        done = 0
        for conversation in active:
            try:
                services.conversation_end(conversation=conversation, status=Conversation.Status.ABANDONED)
            except services.IntakeError as error:
                self.message_user(request, str(error), messages.WARNING)
                continue
            audit_admin_action(request, conversation, "Mark abandoned: active → abandoned.")
            done += 1
        self.message_user(request, f"{done} conversation(s) marked abandoned.", messages.SUCCESS)


@admin.register(BuildManifest)
class BuildManifestAdmin(admin.ModelAdmin):
    list_display = ("__str__", "conversation", "customer", "version", "status_badge", "build_link", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("manifest_hash", "customer__name", "conversation__title", "id")
    date_hierarchy = "created_at"
    list_select_related = ("customer", "conversation", "build")
    readonly_fields = (
        "id",
        "conversation",
        "customer",
        "version",
        "status",
        "manifest",
        "manifest_hash",
        "build_link",
        "approved_at",
        "approved_by",
        "submitted_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields
    actions = ("approve", "submit")

    def has_add_permission(self, request):
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, manifest):
        return badge(manifest.status)

    @admin.display(description="build")
    def build_link(self, manifest):
        if manifest.build_id is None:
            return "-"
        url = reverse("admin:builds_build_change", args=[manifest.build_id]) if _has_build_admin() else None
        label = f"{manifest.build_id} ({manifest.build.status})"
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    @admin.action(description="Approve (drafts only)", permissions=["change"])
    def approve(self, request, queryset):
        done = 0
        for manifest in queryset.filter(status=BuildManifest.Status.DRAFT):
            try:
                services.manifest_approve(manifest=manifest, approved_by=request.user.get_username())
                done += 1
            except services.IntakeError as error:
                self.message_user(request, str(error), messages.WARNING)
                continue
            audit_admin_action(request, manifest, "Approve: draft → approved.")
        self.message_user(request, f"{done} manifest(s) approved.", messages.SUCCESS)

    @admin.action(description="Submit to the build queue (approved only)", permissions=["submit"])
    def submit(self, request, queryset):
        done = 0
        for manifest in queryset.filter(status=BuildManifest.Status.APPROVED):
            try:
                submitted = services.manifest_submit(manifest=manifest)
                done += 1
            except Exception as error:
                self.message_user(request, str(error), messages.WARNING)
                continue
            audit_admin_action(request, manifest, f"Submit: approved → submitted as build {submitted.build_id}.")
        self.message_user(request, f"{done} manifest(s) submitted.", messages.SUCCESS)

    def has_submit_permission(self, request):
        """Submitting spends the customer's build quota: it needs change on manifests and add on builds."""
        return request.user.has_perms(["intake.change_buildmanifest", "builds.add_build"])


def _has_build_admin() -> bool:
    from builds.models import Build

    return admin.site.is_registered(Build)


@admin.register(RequirementExtraction)
class RequirementExtractionAdmin(admin.ModelAdmin):
    list_display = ("requirement_type", "value", "confidence", "verification", "corrected_value", "conversation")
    list_filter = ("requirement_type", "verification")
    search_fields = ("value", "corrected_value")
    list_select_related = ("conversation",)
    readonly_fields = (
        "conversation",
        "source_message_id",
        "requirement_type",
        "value",
        "confidence",
        "verification",
        "corrected_value",
        "verified_at",
        "verified_by",
        "created_at",
    )
    actions = ("mark_correct", "mark_incorrect")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Mark correct", permissions=["verify"])
    def mark_correct(self, request, queryset):
        self._verify(request, queryset, correct=True)

    @admin.action(description="Mark incorrect", permissions=["verify"])
    def mark_incorrect(self, request, queryset):
        self._verify(request, queryset, correct=False)

    def has_verify_permission(self, request):
        """Verifying changes the extraction (the form itself stays read-only): change_requirementextraction."""
        return request.user.has_perm("intake.change_requirementextraction")

    def _verify(self, request, queryset, *, correct: bool) -> None:
        verdict = "correct" if correct else "incorrect"
        done = 0
        for extraction in queryset:
            try:
                services.extraction_verify(
                    extraction=extraction, correct=correct, verified_by=request.user.get_username()
                )
            except services.IntakeError as error:
                self.message_user(request, str(error), messages.WARNING)
                continue
            audit_admin_action(request, extraction, f"Verify: marked {verdict}.")
            done += 1
        self.message_user(request, f"{done} extraction(s) marked {verdict}.", messages.SUCCESS)


class ModelPriceForm(forms.ModelForm):
    class Meta:
        model = ModelPrice
        fields = ("match_pattern", "input_price", "output_price", "valid_from", "valid_to", "source")

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                services.price_validate(
                    match_pattern=data["match_pattern"],
                    input_price=data["input_price"],
                    output_price=data["output_price"],
                    valid_from=data["valid_from"],
                    valid_to=data.get("valid_to"),
                    price_id=self.instance.pk,
                )
            except services.IntakeError as error:
                raise forms.ValidationError(str(error)) from error
        return data


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices as data: admins add and close prices (a new price is a new row from the day it holds); operators,
    who have only the view permission, read them."""

    form = ModelPriceForm
    list_display = ("match_pattern", "input_price", "output_price", "valid_from", "valid_to", "source")
    list_filter = ("valid_to",)
    search_fields = ("match_pattern", "source")
    date_hierarchy = "valid_from"
    actions = ("price_unpriced_messages",)

    @admin.action(description="Price the unpriced messages these patterns now cover", permissions=["change"])
    def price_unpriced_messages(self, request, queryset):
        priced = 0
        for price in queryset:
            count = services.messages_reprice(model_pattern=price.match_pattern)
            if count:
                audit_admin_action(request, price, f"Priced {count} unpriced message(s).")
            priced += count
        self.message_user(request, f"{priced} message(s) priced.", messages.SUCCESS)


class ViewAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only admin over a SQL view: no add, change or delete."""


@admin.register(ExtractionEvaluation)
class ExtractionEvaluationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The runs of ``manage.py evaluate_extractor`` (written only by the command)."""

    list_display = (
        "created_at",
        "extractor",
        "split",
        "requirement_type",
        "true_positives",
        "false_positives",
        "false_negatives",
        "exact_cases",
        "cases",
    )
    list_filter = ("split", "requirement_type", "extractor")
    date_hierarchy = "created_at"


@admin.register(ActiveConversation)
class ActiveConversationAdmin(ViewAdmin):
    list_display = (
        "id",
        "customer_name",
        "model",
        "channel",
        "message_count",
        "total_cost",
        "last_message_at",
        "idle_for",
        "open_manifest_status",
    )
    list_filter = ("model", "channel")
    search_fields = ("customer_name", "title")


@admin.register(ConversationPerformanceSummary)
class ConversationPerformanceSummaryAdmin(ViewAdmin):
    list_display = (
        "day",
        "model",
        "conversations",
        "messages",
        "total_tokens",
        "total_cost",
        "avg_satisfaction",
        "submitted_share",
    )
    list_filter = ("model",)
    date_hierarchy = "day"


@admin.register(IntentAnalytics)
class IntentAnalyticsAdmin(ViewAdmin):
    list_display = ("day", "intent", "intents", "conversations", "avg_confidence")
    list_filter = ("intent",)
    date_hierarchy = "day"


@admin.register(ExtractionAccuracy)
class ExtractionAccuracyAdmin(ViewAdmin):
    list_display = (
        "requirement_type",
        "extractions",
        "verified",
        "correct",
        "corrected",
        "incorrect",
        "verified_share",
        "precision",
        "avg_confidence",
        "evaluation_precision",
        "evaluation_recall",
        "evaluation_f1",
        "evaluated_at",
    )
