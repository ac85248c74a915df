"""The license admin's quota columns: this month's builds used and remaining in the list, and the month's use on
the change page, from ``builds.queue.selectors`` (the quota counts ``build_queue``).

The license admin belongs to ``licensing``, which may not import ``builds`` (apps import downwards only); so this
module, one layer up, adds the columns to it, where they stood before (after "is trial" in the list, after
"features" on the change page). Imported by ``builds.queue.admin``.
"""

from django.contrib import admin

from builds.queue import selectors
from licensing.admin import LicenseAdmin


def _after(names, anchor: str, *added: str) -> list[str]:
    names = list(names)
    at = names.index(anchor) + 1
    return [*names[:at], *added, *names[at:]]


@admin.display(description="quota used")
def quota_used(self, obj):
    return getattr(obj, "quota_used", None)


@admin.display(description="quota remaining")
def quota_remaining(self, obj):
    used = getattr(obj, "quota_used", None)
    return None if used is None else max(obj.monthly_build_quota - used, 0)


@admin.display(description="this month")
def quota_this_month(self, obj):
    usage = selectors.license_quota_usage(license=obj)
    return (
        f"{usage.used} of {usage.monthly_quota} builds used, {usage.remaining} left "
        f"({usage.period_start:%Y-%m-%d} to {usage.period_end:%Y-%m-%d}, UTC)"
    )


_licensing_queryset = LicenseAdmin.get_queryset


def get_queryset(self, request):
    """The licenses annotated with ``quota_used`` in the list's own query (no query per row)."""
    return selectors.licenses_with_quota_used(_licensing_queryset(self, request))


LicenseAdmin.quota_used = quota_used  # type: ignore[attr-defined]
LicenseAdmin.quota_remaining = quota_remaining  # type: ignore[attr-defined]
LicenseAdmin.quota_this_month = quota_this_month  # type: ignore[attr-defined]
LicenseAdmin.get_queryset = get_queryset  # type: ignore[method-assign]
LicenseAdmin.list_display = _after(LicenseAdmin.list_display, "is_trial", "quota_used", "quota_remaining")
LicenseAdmin.readonly_fields = _after(LicenseAdmin.readonly_fields, "features", "quota_this_month")
