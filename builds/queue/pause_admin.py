"""Pause and drain in the admin (issue 16): pause/resume claiming for the selected customers or licenses, and the
list of pauses (resume from there too). Each action needs ``builds.pause_claims`` (operators and admins have it)
and writes one admin log entry per object it changed.

The customer and license admins belong to ``licensing``, which may not import ``builds`` (apps import downwards
only); so this module, one layer up, adds its actions to them.
"""

from django.contrib import admin, messages

from builds.models import ClaimPause
from builds.queue import services
from honua import errors
from honua.admin_utils import audit_admin_action
from licensing.admin import CustomerAdmin, LicenseAdmin

PAUSE_REASON = "paused from the admin"


def _has_pause_claims_permission(self, request):
    return request.user.has_perm("builds.pause_claims")


def _run(modeladmin, request, queryset, scope: str, pause: bool) -> None:
    done = 0
    for obj in queryset:
        try:
            if pause:
                paused_before = ClaimPause.objects.filter(scope=scope, target_id=obj.pk).exists()
                services.claims_pause(
                    scope=scope, target=obj, reason=PAUSE_REASON, paused_by=request.user.get_username()
                )
                changed = not paused_before
            else:
                changed = services.claims_resume(scope=scope, target=obj)
        except errors.HonuaError as error:
            modeladmin.message_user(request, f"{obj}: {error}", messages.ERROR)
            continue
        if changed:
            done += 1
            verb = "Pause claiming" if pause else "Resume claiming"
            audit_admin_action(request, obj, f"{verb} for this {scope}.")
    modeladmin.message_user(
        request, f"{done} {scope}(s) {'paused' if pause else 'resumed'}.", messages.SUCCESS if done else messages.INFO
    )


@admin.action(description="Pause claiming for selected customers (running builds finish)", permissions=["pause_claims"])
def pause_customer_claims(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, ClaimPause.Scope.CUSTOMER, pause=True)


@admin.action(description="Resume claiming for selected customers", permissions=["pause_claims"])
def resume_customer_claims(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, ClaimPause.Scope.CUSTOMER, pause=False)


@admin.action(description="Pause claiming for selected licenses (running builds finish)", permissions=["pause_claims"])
def pause_license_claims(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, ClaimPause.Scope.LICENSE, pause=True)


@admin.action(description="Resume claiming for selected licenses", permissions=["pause_claims"])
def resume_license_claims(modeladmin, request, queryset):
    _run(modeladmin, request, queryset, ClaimPause.Scope.LICENSE, pause=False)


CustomerAdmin.actions = [*(CustomerAdmin.actions or []), pause_customer_claims, resume_customer_claims]
CustomerAdmin.has_pause_claims_permission = _has_pause_claims_permission  # type: ignore[attr-defined]
LicenseAdmin.actions = [*(LicenseAdmin.actions or []), pause_license_claims, resume_license_claims]
LicenseAdmin.has_pause_claims_permission = _has_pause_claims_permission  # type: ignore[attr-defined]


@admin.register(ClaimPause)
class ClaimPauseAdmin(admin.ModelAdmin):
    """What is paused and since when; written only through pause_claims/resume_claims."""

    list_display = ["scope", "target_id", "paused_at", "paused_by", "reason"]
    list_filter = ["scope"]
    actions = None  # pause and resume from the customer, license and dashboard pages

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
