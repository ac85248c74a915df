"""Admin for the build cache: entries (with exact hit counts, idle age, an evict action) and the access log
(read-only). Found by honua.registry.autodiscover (``BuildsConfig.subpackages``)."""

import datetime as dt
import uuid

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from builds.cache.selectors import cache_entries_with_usage
from builds.cache.services import cache_entries_evict_chosen
from builds.models import BuildAccessLog, BuildCacheEntry, CacheStatistics
from honua.admin_utils import BigTableAdminMixin, ReadOnlyAdminMixin, audit_admin_action
from licensing.models import Customer, License


class OwnerTierFilter(admin.SimpleListFilter):
    title = "owner's tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        return License.Tier.choices

    def queryset(self, request, queryset):
        if self.value():
            usable = License.objects.filter(tier=self.value(), status=License.Status.ACTIVE, deleted_at__isnull=True)
            return queryset.filter(owner__in=usable.values("customer"))
        return queryset


class IdleFilter(admin.SimpleListFilter):
    title = "idle for"
    parameter_name = "idle"
    DAYS = {"1d": 1, "7d": 7, "30d": 30, "90d": 90}

    def lookups(self, request, model_admin):
        return [("1d", "over a day"), ("7d", "over a week"), ("30d", "over 30 days"), ("90d", "over 90 days")]

    def queryset(self, request, queryset):
        if self.value() in self.DAYS:
            return queryset.filter(live_last_used_at__lt=timezone.now() - dt.timedelta(days=self.DAYS[self.value()]))
        return queryset


class LiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "live"), ("evicted", "evicted")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "evicted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(BuildCacheEntry)
class BuildCacheEntryAdmin(admin.ModelAdmin):
    list_display = [
        "short_hash",
        "owner",
        "visibility_badge",
        "hits",
        "last_access",
        "size",
        "architectures",
        "created_at",
        "deleted_at",
    ]
    list_filter = ["visibility", OwnerTierFilter, IdleFilter, LiveFilter]
    search_fields = ["manifest_hash__startswith", "image_reference", "owner__name"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    actions = ["evict"]
    readonly_fields = [f.name for f in BuildCacheEntry._meta.fields]
    show_full_result_count = False

    def get_queryset(self, request):
        return cache_entries_with_usage(super().get_queryset(request))

    def has_add_permission(self, request):
        return False  # entries come from builds (register_build_in_cache)

    @admin.display(description="manifest hash", ordering="manifest_hash")
    def short_hash(self, entry):
        return entry.manifest_hash[:12]

    @admin.display(description="visibility", ordering="visibility")
    def visibility_badge(self, entry):
        colour = "#2e7d32" if entry.visibility == BuildCacheEntry.Visibility.SHARED else "#555"
        return format_html('<span style="color:{}">{}</span>', colour, entry.get_visibility_display())

    @admin.display(description="hits", ordering="live_hit_count")
    def hits(self, entry):
        return entry.live_hit_count

    @admin.display(description="last access", ordering="live_last_accessed_at")
    def last_access(self, entry):
        return entry.live_last_accessed_at

    @admin.display(description="size", ordering="size_bytes")
    def size(self, entry):
        return _human_bytes(entry.size_bytes)

    @admin.action(
        description="Evict selected entries (entries in use by queued or running builds are kept)",
        permissions=["change"],
    )
    def evict(self, request, queryset):
        evicted, skipped = cache_entries_evict_chosen(
            entry_ids=list(queryset.filter(deleted_at__isnull=True).values_list("pk", flat=True))
        )
        for entry in BuildCacheEntry.objects.filter(pk__in=evicted):
            audit_admin_action(request, entry, "Evict: live → evicted (deleted_at set).")
        self.message_user(request, f"Evicted {len(evicted)} cache entries.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Kept {skipped} in use by queued or running builds.", messages.WARNING)


class CustomerFilter(admin.SimpleListFilter):
    """Customers by name (the log has no foreign key, so it can become partitions); search finds any by id."""

    title = "customer"
    parameter_name = "customer"

    def lookups(self, request, model_admin):
        return [(str(c.pk), c.name) for c in Customer.objects.filter(deleted_at__isnull=True).order_by("name")[:200]]

    def queryset(self, request, queryset):
        return queryset.filter(customer_id=self.value()) if self.value() else queryset


@admin.register(BuildAccessLog)
class BuildAccessLogAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = ["accessed_at", "customer", "short_hash", "hit", "latency_us", "cache_entry_id"]
    # A date filter rather than date_hierarchy: the hierarchy reads the min, max and distinct months of the whole
    # log on every page (about 230 ms at a million rows); the filter's choices cost no query.
    list_filter = ["hit", ("accessed_at", admin.DateFieldListFilter), CustomerFilter]
    search_fields = ["manifest_hash"]  # see get_search_results
    search_help_text = "A customer id, or the start of a manifest hash."
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        """A customer's UUID finds its lookups; anything else is matched as the start of a manifest hash."""
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(customer_id=uuid.UUID(term)), False
        except ValueError:
            return queryset.filter(manifest_hash__startswith=term.lower()), False

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        ids = {row.customer_id for row in changelist.result_list}
        self._names = dict(Customer.objects.filter(pk__in=ids).values_list("pk", "name"))
        return changelist

    @admin.display(description="customer")
    def customer(self, row):
        return getattr(self, "_names", {}).get(row.customer_id, row.customer_id)

    @admin.display(description="manifest hash")
    def short_hash(self, row):
        return row.manifest_hash[:12]


class CacheScopeFilter(admin.SimpleListFilter):
    """The view's two scopes, listed without querying it (a field filter would evaluate the view for them)."""

    title = "scope"
    parameter_name = "scope__exact"

    def lookups(self, request, model_admin):
        return [("overall", "overall"), ("customer", "customer")]

    def queryset(self, request, queryset):
        return queryset.filter(scope=self.value()) if self.value() else queryset


@admin.register(CacheStatistics)
class CacheStatisticsAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The cache_statistics view: the overall row and one per customer (read-only).

    Each evaluation of the view aggregates the access rollup, so the page does not evaluate it more than it must:
    no second, unfiltered count, and a scope filter that lists its two values without a query.
    """

    list_display = [
        "who",
        "lookups",
        "hits",
        "misses",
        "rate",
        "entries",
        "shared_entries",
        "stored",
        "time_saved",
    ]
    list_display_links = None
    list_filter = [CacheScopeFilter]
    show_full_result_count = False
    search_fields = ["customer_name"]
    ordering = ["scope", "-hits", "customer_name"]

    @admin.display(description="customer", ordering="customer_name")
    def who(self, row):
        return row.customer_name or "(all customers)"

    @admin.display(description="hit rate", ordering="hit_rate")
    def rate(self, row):
        return f"{row.hit_rate * 100:.1f}%"

    @admin.display(description="bytes stored", ordering="bytes_stored")
    def stored(self, row):
        return _human_bytes(row.bytes_stored)


def _human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
