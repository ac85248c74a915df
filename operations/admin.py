from django.contrib import admin

from honua.admin_utils import ReadOnlyAdminMixin
from operations.models import AccessLogArchive


@admin.register(AccessLogArchive)
class AccessLogArchiveAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only view of archived cache lookups (table mode of the monthly access-log archive)."""

    list_display = ["accessed_at", "hit", "manifest_hash", "customer_id", "latency_us", "archived_at"]
    list_filter = ["hit"]
    search_fields = ["=manifest_hash", "=customer_id"]
    date_hierarchy = "accessed_at"
    show_full_result_count = False  # no count(*) over millions of rows on every page
    readonly_fields = [field.name for field in AccessLogArchive._meta.fields]
