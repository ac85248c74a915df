"""Admin for the build queue: filters, progress bars, durations, the build's timeline, and the actions cancel,
retry and change priority. Actions filter the selection to the builds they apply to, require their custom
permission, call the services, and record each change in the admin log. Found by honua.registry.autodiscover
(``BuildsConfig.subpackages``); it imports pause_admin and quota_admin, which add the pause actions and the quota
columns to licensing's admins."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from builds.models import Build
from builds.queue import pause_admin, quota_admin, selectors, services  # noqa: F401 (the two extend licensing admins)
from honua.admin_utils import BigTableAdminMixin, audit_admin_action, html_table

LOG_TAIL_LINES = 40
METRICS_SHOWN = 100

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


RETRYABLE = (Build.Status.FAILED, Build.Status.TIMED_OUT, Build.Status.CANCELLED)
PRIORITY_CHOICE = "Choose a priority from 1 to 10 (10 the most urgent)."
NOT_APPLICABLE = "not in a state this operation applies to"
OPERATION_TITLES = {"cancel": "Cancel", "retry": "Retry", "priority": "Change the priority of"}


def _duration_ms(milliseconds: int | None) -> str:
    return "-" if milliseconds is None else _duration(dt.timedelta(milliseconds=milliseconds))


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


@admin.register(Build)
class BuildAdmin(BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "number",
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
    # Searched by selectors.builds_search (get_search_results): number, id, hash, manifest, error text, customer.
    search_fields = ("manifest",)
    search_help_text = (
        "A build number (#123), id or manifest hash; a base image or package of the manifest; words of the error; "
        "a customer's name."
    )
    date_hierarchy = "created_at"
    ordering = ("-build_number",)  # newest first through the unique index (no sort of the whole queue)
    list_per_page = 50
    show_full_result_count = False  # no count(*) over the whole history on every page
    action_form = PriorityActionForm
    actions = ("cancel_builds", "retry_builds", "change_priority")
    readonly_fields = (
        "number",
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
        "attempts",
        "artifacts",
        "metrics",
    )
    fieldsets = (
        (
            None,
            {"fields": ("number", "id", "customer", "license", "status_badge", "priority", "progress_bar", "stage")},
        ),
        ("Work", {"fields": ("worker_id", "retry_count", "max_retries", "cancel_requested", "source")}),
        ("Manifest", {"fields": ("manifest_hash", "manifest_folded", "cache_hit", "cache_entry")}),
        ("Outcome", {"fields": ("image_reference", "image_digest", "error_message")}),
        ("Attempts", {"fields": ("attempts",)}),
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
        ("Artifacts", {"fields": ("artifacts",)}),
        ("Metrics", {"fields": ("metrics",)}),
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

    @admin.display(description="build", ordering="build_number")
    def number(self, obj: Build) -> str:
        return obj.label

    def get_search_results(self, request, queryset, search_term):
        return selectors.builds_search(queryset=queryset, term=search_term), False

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
        return html_table(
            ["at", "what", "transition", "worker", "detail"],
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

    @admin.display(description="attempts")
    def attempts(self, obj: Build) -> str:
        rows = selectors.build_attempts(build=obj, log_tail_lines=LOG_TAIL_LINES)
        if not rows:
            return "No attempt has finished yet."
        body = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="build-error">{}</td></tr>'
            '<tr class="build-log-row"><td colspan="7"><pre class="build-log-tail">{}</pre></td></tr>',
            (
                (
                    row.attempt,
                    row.status,
                    row.worker_id or "-",
                    timezone.localtime(row.finished_at).strftime("%Y-%m-%d %H:%M:%S"),
                    _duration_ms(row.queue_wait_ms),
                    _duration_ms(row.duration_ms),
                    row.error or "-",
                    row.log_tail or "(no log)",
                )
                for row in rows
            ),
        )
        return format_html(
            '<table class="build-attempts"><thead><tr><th>attempt</th><th>status</th><th>worker</th><th>finished</th>'
            "<th>queue wait</th><th>duration</th><th>error (the log's last {} lines below)</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            LOG_TAIL_LINES,
            body,
        )

    @admin.display(description="artifacts")
    def artifacts(self, obj: Build) -> str:
        rows = list(obj.artifacts.order_by("created_at", "id"))
        if not rows:
            return "None."
        return html_table(
            ["kind", "uri", "media type", "size", "checksum"],
            (
                (
                    a.get_kind_display(),
                    a.uri,
                    a.media_type,
                    f"{a.size_bytes:,} bytes",
                    format_html("<code>sha256:{}</code>", a.sha256),
                )
                for a in rows
            ),
        )

    @admin.display(description="metrics")
    def metrics(self, obj: Build) -> str:
        rows = selectors.build_metrics(build=obj, limit=METRICS_SHOWN)
        if not rows:
            return "None recorded."
        return html_table(
            ["at", "name", "value", "unit"],
            (
                (timezone.localtime(m.recorded_at).strftime("%Y-%m-%d %H:%M:%S"), m.name, f"{m.value:g}", m.unit)
                for m in rows
            ),
        )

    # --- the build page's buttons: the list actions' services, one build, after a confirmation ----------------

    def get_urls(self):
        urls = [
            path(
                "<path:object_id>/<str:operation>/confirm/",
                self.admin_site.admin_view(self.operation_view),
                name="builds_build_operation",
            )
        ]
        return urls + super().get_urls()

    def _operations(self, request, build: Build) -> list[dict]:
        """The operations this user may apply to this build now, for the page's buttons."""
        offered = []
        if build.status in selectors.LIVE_STATUSES and self.has_cancel_permission(request):
            offered.append({"name": "cancel", "label": "Cancel build"})
        if build.status in RETRYABLE and self.has_retry_permission(request):
            offered.append({"name": "retry", "label": "Retry build"})
        if build.status == Build.Status.QUEUED and self.has_reprioritize_permission(request):
            offered.append({"name": "priority", "label": "Change priority"})
        for item in offered:
            item["url"] = reverse("admin:builds_build_operation", args=[build.pk, item["name"]])
        return offered

    def change_view(self, request, object_id, form_url="", extra_context=None):
        build = self.get_object(request, object_id)
        extra = {"build_operations": self._operations(request, build) if build else []}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def operation_view(self, request, object_id, operation):
        """GET: a confirmation page; POST: apply the operation (the list action's service), log it, go back."""
        build = self.get_object(request, object_id)
        if build is None:
            raise Http404("No such build.")
        if not self.has_view_permission(request, build):
            raise PermissionDenied
        allowed = {op["name"] for op in self._operations(request, build)}
        permitted = {
            "cancel": self.has_cancel_permission,
            "retry": self.has_retry_permission,
            "priority": self.has_reprioritize_permission,
        }
        if operation not in permitted:
            raise Http404("No such operation.")
        if not permitted[operation](request):
            raise PermissionDenied
        page = reverse("admin:builds_build_change", args=[build.pk])
        form = PriorityForm(request.POST or None, initial={"priority": build.priority})
        if request.method == "POST" and operation in allowed:
            if operation == "priority" and not form.is_valid():
                self.message_user(request, PRIORITY_CHOICE, messages.ERROR)
            else:
                done = {
                    "cancel": lambda: self._cancel_one(request, build),
                    "retry": lambda: self._retry_one(request, build),
                    "priority": lambda: self._reprioritize_one(request, build, form.cleaned_data["priority"]),
                }[operation]()
                verb = {"cancel": "cancelled", "retry": "queued again", "priority": "reprioritized"}[operation]
                if done:
                    self.message_user(request, f"Build {build.label} {verb}.", messages.SUCCESS)
                else:
                    self.message_user(
                        request, f"Build {build.label} was not {verb}: {NOT_APPLICABLE}.", messages.WARNING
                    )
                return HttpResponseRedirect(page)
        elif request.method == "POST":
            self.message_user(request, f"Build {build.label}: {NOT_APPLICABLE}.", messages.WARNING)
            return HttpResponseRedirect(page)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{OPERATION_TITLES[operation]} build {build.label}?",
            "build": build,
            "operation": operation,
            "applicable": operation in allowed,
            "form": form,
            "change_url": page,
        }
        return TemplateResponse(request, "admin/builds/build/confirm_operation.html", context)

    # --- one build at a time: shared by the list actions and the page's buttons ---------------------------------

    def _log(self, request, build: Build, message: str) -> None:
        """The admin log entry of a queue operation (the project's one audit helper)."""
        audit_admin_action(request, build, message)

    def _cancel_one(self, request, build: Build) -> bool:
        try:
            outcome = services.build_cancel(build=build, reason=f"cancelled by {request.user.get_username()}")
        except services.BuildStateError:
            return False  # finished meanwhile
        self._log(request, build, f"Cancel: {outcome}.")
        return True

    def _retry_one(self, request, build: Build) -> bool:
        try:
            services.build_retry(build=build)
        except services.BuildStateError:
            return False
        self._log(request, build, "Retry: queued again.")
        return True

    def _reprioritize_one(self, request, build: Build, priority: int) -> bool:
        old = build.priority
        try:
            services.build_change_priority(build=build, priority=priority)
        except services.BuildStateError:
            return False
        self._log(request, build, f"Priority: {old} → {priority}.")
        return True

    # --- actions ----------------------------------------------------------------------------------------------

    def _report(self, request, done: int, skipped: int, verb: str) -> None:
        level = messages.SUCCESS if done else messages.WARNING
        text = f"{done} build(s) {verb}."
        if skipped:
            text += f" {skipped} skipped (not in a state this action applies to)."
        self.message_user(request, text, level)

    # Each action counts the selection before it acts: the changelist's filter (e.g. ?status__exact=queued) is
    # part of the queryset, so counting afterwards would miss the builds the action just moved ("-1 skipped").

    @admin.action(
        description="Cancel selected builds (queued: at once; running: at their next report)", permissions=["cancel"]
    )
    def cancel_builds(self, request, queryset):
        selected = queryset.count()
        done = sum(self._cancel_one(request, b) for b in queryset.filter(status__in=selectors.LIVE_STATUSES))
        self._report(request, done, selected - done, "cancelled or marked for cancellation")

    @admin.action(description="Retry selected builds (failed, timed out or cancelled)", permissions=["retry"])
    def retry_builds(self, request, queryset):
        selected = queryset.count()
        done = sum(self._retry_one(request, b) for b in queryset.filter(status__in=RETRYABLE))
        self._report(request, done, selected - done, "queued again")

    @admin.action(description="Change priority of selected queued builds", permissions=["reprioritize"])
    def change_priority(self, request, queryset):
        form = PriorityForm(request.POST)
        if not form.is_valid():
            self.message_user(request, PRIORITY_CHOICE, messages.ERROR)
            return
        priority = form.cleaned_data["priority"]
        selected = queryset.count()
        done = sum(self._reprioritize_one(request, b, priority) for b in queryset.filter(status=Build.Status.QUEUED))
        self._report(request, done, selected - done, f"set to priority {priority}")
