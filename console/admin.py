"""The audit trail in the admin, and read-only admins for models no app has given one.

``console`` is the last app, so by the time this module is imported every app's ``admin.py`` has registered its
models. Whatever is still unregistered gets a read-only view (no add/change/delete, secrets left out, cheap
counts), so an operator can see every table of the system.
"""

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import models
from django.utils.text import Truncator

from honua.admin_utils import BigTableAdminMixin, ReadOnlyAdminMixin
from intake.models import ConversationMessage

DOMAIN_APPS = ("honua", "licensing", "builds", "intake", "operations")
SECRET_FIELD_WORDS = ("encrypted", "secret", "key_index", "password")
BULKY_FIELDS = (models.TextField, models.JSONField)


def is_secret_field(field) -> bool:
    return any(word in field.name for word in SECRET_FIELD_WORDS)


@admin.register(LogEntry)
class AuditTrailAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    """Django's admin log: who did what through the admin, including every queue action."""

    list_display = ("action_time", "user", "content_type", "object_repr", "action_flag", "change_message")
    list_filter = ("action_flag", "content_type")
    search_fields = ("object_repr", "object_id", "user__username")
    list_select_related = ("user", "content_type")
    ordering = ("-action_time",)


# The text search configuration of messages; console/migrations/0002_message_search.py indexes exactly this.
MESSAGE_SEARCH_CONFIG = "english"
MESSAGE_EXCERPT_CHARS = 160


@admin.register(ConversationMessage)
class ConversationMessageAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    """Messages with their content, searchable by words (PostgreSQL full-text search, stemmed English)."""

    list_display = ("created_at", "conversation", "role", "excerpt", "model", "prompt_tokens", "completion_tokens")
    list_filter = ("role",)
    list_select_related = ("conversation",)
    search_fields = ("content",)  # searched by get_search_results below
    search_help_text = 'Words of the message (e.g. gdal arm64, "base image", python -java).'
    ordering = ("-created_at",)
    list_per_page = 50
    fields = readonly_fields = (
        "conversation",
        "role",
        "content",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
        "created_at",
    )

    @admin.display(description="content")
    def excerpt(self, message: ConversationMessage) -> str:
        return Truncator(message.content).chars(MESSAGE_EXCERPT_CHARS)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        words = SearchQuery(term, config=MESSAGE_SEARCH_CONFIG, search_type="websearch")
        return queryset.alias(text=SearchVector("content", config=MESSAGE_SEARCH_CONFIG)).filter(text=words), False


class ReadOnlyAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    """A view of a model with no admin of its own: safe columns only, no writes."""


def read_only_admin(model) -> type[ReadOnlyAdmin]:
    fields = [f for f in model._meta.concrete_fields if not is_secret_field(f)]
    columns = [f.name for f in fields if not isinstance(f, BULKY_FIELDS)][:7]
    return type(
        f"{model.__name__}ReadOnlyAdmin",
        (ReadOnlyAdmin,),
        {
            "list_display": columns,
            "list_select_related": [f.name for f in fields if f.name in columns and f.is_relation],
            "fields": [f.name for f in fields],
            "readonly_fields": [f.name for f in fields],
        },
    )


for _model in apps.get_models():
    if (
        _model._meta.app_label in DOMAIN_APPS
        and not admin.site.is_registered(_model)
        and not _model._meta.is_composite_pk  # the admin cannot show those
    ):
        admin.site.register(_model, read_only_admin(_model))
