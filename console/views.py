"""The console's admin pages. Thin: the figures come from console.dashboard (over console.selectors)."""

import functools
import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from builds.models import ClaimPause
from builds.queue import services as build_services
from console import dashboard as presenter
from console import selectors
from honua.admin_utils import audit_admin_action
from honua.routers import replica_view

LIVE_FORBIDDEN = "staff with permission to view builds only"
POLL_SECONDS = 5


def _context(request, **extra) -> dict:
    return {
        **admin.site.each_context(request),
        "live_url": reverse("admin:console_live"),
        "poll_seconds": POLL_SECONDS,
        **extra,
    }


def _customer_id(request) -> str | None:
    """The customer the charts are narrowed to (``?customer=<uuid>``), or None; a malformed id is ignored."""
    value = request.GET.get("customer", "")
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


def _queue_panel_required(view):
    """Refuse (403) a user who may not see the queue panel (staff with permission to view builds)."""

    @functools.wraps(view)
    def checked(request, *args, **kwargs):
        if "queue" not in presenter.visible_panels(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return checked


@never_cache
@require_GET
@replica_view
def dashboard(request):
    """The operator's overview (staff only, through admin_view); each panel needs its data's view permission.
    ``?range=`` (1h, 24h, 7d, 30d) and ``?customer=`` choose the build charts; ``?partial=1`` renders only the
    panels, which the page fetches to refresh itself in place."""
    customer_id = _customer_id(request)
    figures = presenter.dashboard_context(
        request.user, range_key=request.GET.get("range", selectors.DEFAULT_RANGE), customer_id=customer_id
    )
    if request.GET.get("partial"):
        return TemplateResponse(request, "console/includes/dashboard_panels.html", figures)
    customers = selectors.customers_for_filter() if "queue" in figures["panels"] else []
    context = _context(request, title="Operations dashboard", customers=customers, customer_id=customer_id, **figures)
    return TemplateResponse(request, "console/dashboard.html", context)


@require_GET
@replica_view
@_queue_panel_required
def running_builds(request):
    """Running builds with progress and heartbeat age, refreshed in place."""
    live = presenter.live_payload(request.user, running_limit=200)
    context = _context(request, title="Running builds", running=live["running"], queue=live["queue"])
    return TemplateResponse(request, "console/running.html", context)


@require_GET
@replica_view
@_queue_panel_required
def workers(request):
    """Every worker seen in the last hour: builds held, last heartbeat and claim, builds done and failed."""
    context = _context(request, title="Workers", workers=selectors.workers(), live=False)
    return TemplateResponse(request, "console/workers.html", context)


@never_cache
@require_GET
@replica_view
def live(request):
    """JSON for polling: queue depth and running builds. 403 with no data unless staff allowed to view builds."""
    if "queue" not in presenter.visible_panels(request.user):
        return JsonResponse({"error": LIVE_FORBIDDEN}, status=403)
    try:
        limit = min(max(int(request.GET.get("limit", 50)), 1), 200)
    except ValueError:
        limit = 50
    return JsonResponse(presenter.live_payload(request.user, running_limit=limit))


@require_POST
def global_claims(request):
    """The dashboard's global pause and resume (``action=pause|resume``): needs ``builds.pause_claims``; the
    change is written to the admin log (on the pause's row)."""
    if not request.user.has_perm("builds.pause_claims"):
        raise PermissionDenied
    action = request.POST.get("action")
    if action == "pause":
        existed = ClaimPause.objects.filter(scope=ClaimPause.Scope.GLOBAL).exists()
        pause = build_services.claims_pause(
            scope=ClaimPause.Scope.GLOBAL,
            reason=request.POST.get("reason", "")[:500],
            paused_by=request.user.get_username(),
        )
        if not existed:
            audit_admin_action(request, pause, "Pause all claiming.")
        messages.success(request, "All claiming is paused; running builds finish.")
    elif action == "resume":
        pause = ClaimPause.objects.filter(scope=ClaimPause.Scope.GLOBAL).first()
        if pause is not None and build_services.claims_resume(scope=ClaimPause.Scope.GLOBAL):
            audit_admin_action(request, pause, "Resume all claiming.")
        messages.success(request, "Claiming resumed.")
    else:
        messages.error(request, "Unknown action.")
    return HttpResponseRedirect(reverse("admin:console_dashboard"))
