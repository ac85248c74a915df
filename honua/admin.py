from django.contrib import admin
from django.db.models import Max, Q

from honua.admin_utils import ReadOnlyAdminMixin
from honua.models import MaintenanceRun


@admin.register(MaintenanceRun)
class MaintenanceRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only history of run_maintenance: when each task ran, how long, how many rows, and whether it worked."""

    list_display = ["task", "schedule", "outcome_badge", "rows", "duration_ms", "started_at", "last_success"]
    list_filter = ["outcome", "schedule", "task"]
    search_fields = ["task", "error", "detail"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-id"]
    readonly_fields = [field.name for field in MaintenanceRun._meta.fields]

    def get_queryset(self, request):
        # When each task last succeeded, in the same query (no query per row).
        last = MaintenanceRun.objects.values("task").annotate(at=Max("started_at", filter=Q(outcome="succeeded")))
        self._last_success = {row["task"]: row["at"] for row in last}
        return super().get_queryset(request)

    @admin.display(description="outcome", ordering="outcome")
    def outcome_badge(self, run: MaintenanceRun) -> str:
        return "✔ succeeded" if run.outcome == MaintenanceRun.Outcome.SUCCEEDED else "✘ failed"

    @admin.display(description="task last succeeded")
    def last_success(self, run: MaintenanceRun):
        return getattr(self, "_last_success", {}).get(run.task) or "never"
