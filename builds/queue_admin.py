"""Admin for the build queue: filters, progress bars, durations, the build's timeline, and the actions cancel,
retry and change priority. Actions filter the selection to the builds they apply to, require their custom
permission, call the services, and record each change in the admin log. Imported by builds/admin.py."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from builds import selectors, services
from builds.models import Build, BuildArtifact, BuildResult
from honua.admin_utils import BigTableAdminMixin, audit_admin_action

STATUS_COLOURS = {
    "queued": "#6c757d",
    "running": "#0d6efd",
    "succeeded": "#198754",
    "failed": "#dc3545",
    "cancelled": "#6f42c1",
    "timed_out": "#fd7e14",
}


MANIFEST_PREVIEW_CHARS = 16 * 1024


def _kilobytes(size: int) -> str:
    return f"{size / 1024:,.0f} KB" if size >= 1024 else f"{size} bytes"


def _duration(delta: dt.timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


class PriorityActionForm(ActionForm):
    # Checked by the action itself (PriorityForm), so a bad value gets its message rather than a silent no-op.
    priority = forms.IntegerField(required=False, help_text="For 'change priority': 1..10, 10 the most urgent.")


class PriorityForm(forms.Form):
    priority = forms.IntegerField(min_value=1, max_value=10)


class BuildResultInline(admin.TabularInline):
    model = BuildResult
    extra = 0
    can_delete = False
    fields = ("attempt", "status", "worker_id", "image_digest", "error_message", "queue_wait_ms", "duration_ms")
    readonly_fields = fields
    ordering = ("attempt",)

    def has_add_permission(self, request, obj=None):
        return False


class BuildArtifactInline(admin.TabularInline):
    model = BuildArtifact
    extra = 0
    can_delete = False
    fields = ("kind", "uri", "media_type", "size_bytes", "sha256")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Build)
class BuildAdmin(BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "customer",
        "status_badge",
        "priority",
        "progress_bar",
        "stage",
        "worker_id",
        "retries",
        "created_at",
        "queue_wait",
        "run_time",
    )
    list_filter = (
        "status",
        "priority",
        "license__tier",
        "cache_hit",
        "source",
        ("customer", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("customer", "license")
    search_fields = ("=id", "customer__name", "worker_id", "=manifest_hash")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 50
    show_full_result_count = False  # no count(*) over the whole history on every page
    action_form = PriorityActionForm
    actions = ("cancel_builds", "retry_builds", "change_priority")
    inlines = (BuildResultInline, BuildArtifactInline)
    readonly_fields = (
        "id",
        "customer",
        "license",
        "status_badge",
        "priority",
        "progress_bar",
        "stage",
        "worker_id",
        "retry_count",
        "max_retries",
        "cancel_requested",
        "cache_hit",
        "cache_entry",
        "source",
        "manifest_hash",
        "manifest_folded",
        "image_reference",
        "image_digest",
        "error_message",
        "timeout_seconds",
        "heartbeat_timeout_seconds",
        "created_at",
        "not_before",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "queue_wait",
        "run_time",
        "timeline",
    )
    fieldsets = (
        (None, {"fields": ("id", "customer", "license", "status_badge", "priority", "progress_bar", "stage")}),
        ("Work", {"fields": ("worker_id", "retry_count", "max_retries", "cancel_requested", "source")}),
        ("Manifest", {"fields": ("manifest_hash", "manifest_folded", "cache_hit", "cache_entry")}),
        ("Outcome", {"fields": ("image_reference", "image_digest", "error_message")}),
        (
            "Times",
            {
                "fields": (
                    "created_at",
                    "not_before",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                    "queue_wait",
                    "run_time",
                    "timeout_seconds",
                    "heartbeat_timeout_seconds",
                )
            },
        ),
        ("Timeline", {"fields": ("timeline",)}),
    )

    def has_add_permission(self, request):
        return False  # builds are enqueued through the service (license, quota, dedup, cache)

    def get_queryset(self, request):
        # The manifest (up to 256 KiB, more for builds queued before the limit) is read by manifest_folded, in part.
        return super().get_queryset(request).defer("manifest")

    @admin.display(description="manifest")
    def manifest_folded(self, obj: Build):
        """The manifest as indented JSON; past MANIFEST_PREVIEW_CHARS folded in a <details> showing its start, so a
        huge manifest is neither loaded whole into Python nor rendered whole (the database cuts it)."""
        size, preview, folded = selectors.manifest_preview(build_id=obj.pk, chars=MANIFEST_PREVIEW_CHARS)
        if size is None:
            return "-"
        if not folded:
            return format_html('<pre class="manifest">{}</pre>', preview)
        return format_html(
            '<details class="manifest"><summary>{} of JSON: the first {} KB shown</summary><pre>{}\n…</pre></details>',
            _kilobytes(size),
            MANIFEST_PREVIEW_CHARS // 1024,
            preview,
        )

    def has_change_permission(self, request, obj=None):
        return False  # the queue changes only through its actions

    def has_delete_permission(self, request, obj=None):
        return False

    def has_cancel_permission(self, request):
        return request.user.has_perm("builds.cancel_build")

    def has_retry_permission(self, request):
        return request.user.has_perm("builds.retry_build")

    def has_reprioritize_permission(self, request):
        return request.user.has_perm("builds.reprioritize_build")

    @admin.display(description="build", ordering="id")
    def short_id(self, obj: Build) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Build) -> str:
        label = obj.get_status_display()
        if obj.cancel_requested and obj.status == Build.Status.RUNNING:
            label += " (cancelling)"
        if obj.cache_hit:
            label += " (cache)"
        return format_html(
            '<span style="background:{};color:#fff;padding:1px 6px;border-radius:8px;white-space:nowrap">{}</span>',
            STATUS_COLOURS.get(obj.status, "#6c757d"),
            label,
        )

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, obj: Build) -> str:
        return format_html(
            '<div title="{}%" style="width:100px;background:#e9ecef;border-radius:3px">'
            '<div style="width:{}px;background:{};height:10px;border-radius:3px"></div></div>',
            obj.progress,
            obj.progress,
            STATUS_COLOURS.get(obj.status, "#6c757d"),
        )

    @admin.display(description="retries")
    def retries(self, obj: Build) -> str:
        return f"{obj.retry_count}/{obj.max_retries}"

    @admin.display(description="queue wait")
    def queue_wait(self, obj: Build) -> str:
        if obj.cache_hit:
            return "-"
        end = obj.started_at or (timezone.now() if obj.status == Build.Status.QUEUED else obj.finished_at)
        return _duration(end - obj.created_at if end else None)

    @admin.display(description="run time")
    def run_time(self, obj: Build) -> str:
        if obj.started_at is None:
            return "-"
        return _duration((obj.finished_at or timezone.now()) - obj.started_at)

    @admin.display(description="events")
    def timeline(self, obj: Build) -> str:
        rows = selectors.build_timeline(build=obj)
        if not rows:
            return "-"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(row["at"]).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                    f"{row['kind']}: {row['what']}",
                    f"{row['from'] or ''} → {row['to'] or ''}" if row["kind"] == "event" else "",
                    row["worker_id"] or "",
                    row["detail"] or "",
                )
                for row in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>at</th><th>what</th><th>transition</th><th>worker</th><th>detail</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            body,
        )

    # --- actions ----------------------------------------------------------------------------------------------

    def _report(self, request, done: int, skipped: int, verb: str) -> None:
        level = messages.SUCCESS if done else messages.WARNING
        text = f"{done} build(s) {verb}."
        if skipped:
            text += f" {skipped} skipped (not in a state this action applies to)."
        self.message_user(request, text, level)

    @admin.action(
        description="Cancel selected builds (queued: at once; running: at their next report)", permissions=["cancel"]
    )
    def cancel_builds(self, request, queryset):
        applicable = queryset.filter(status__in=selectors.LIVE_STATUSES)
        done = 0
        for build in applicable:
            try:
                outcome = services.build_cancel(build=build, reason=f"cancelled by {request.user.get_username()}")
            except services.BuildStateError:
                continue  # finished meanwhile
            audit_admin_action(request, build, f"Cancel: {outcome}.")
            done += 1
        self._report(request, done, queryset.count() - done, "cancelled or marked for cancellation")

    @admin.action(description="Retry selected builds (failed, timed out or cancelled)", permissions=["retry"])
    def retry_builds(self, request, queryset):
        applicable = queryset.filter(status__in=[Build.Status.FAILED, Build.Status.TIMED_OUT, Build.Status.CANCELLED])
        done = 0
        for build in applicable:
            try:
                services.build_retry(build=build)
            except services.BuildStateError:
                continue
            audit_admin_action(request, build, "Retry: queued again.")
            done += 1
        self._report(request, done, queryset.count() - done, "queued again")

    @admin.action(description="Change priority of selected queued builds", permissions=["reprioritize"])
    def change_priority(self, request, queryset):
        form = PriorityForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Choose a priority from 1 to 10 (10 the most urgent).", messages.ERROR)
            return
        priority = form.cleaned_data["priority"]
        done = 0
        for build in queryset.filter(status=Build.Status.QUEUED):
            old = build.priority
            try:
                services.build_change_priority(build=build, priority=priority)
            except services.BuildStateError:
                continue
            audit_admin_action(request, build, f"Priority: {old} → {priority}.")
            done += 1
        self._report(request, done, queryset.count() - done, f"set to priority {priority}")
