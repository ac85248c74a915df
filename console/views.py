"""The console's admin pages. Thin: the figures come from console.dashboard (over console.selectors)."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from console import dashboard as presenter

LIVE_FORBIDDEN = "staff with permission to view builds only"
POLL_SECONDS = 5


def _context(request, **extra) -> dict:
    return {
        **admin.site.each_context(request),
        "live_url": reverse("admin:console_live"),
        "poll_seconds": POLL_SECONDS,
        **extra,
    }


@require_GET
def dashboard(request):
    """The operator's overview (staff only, through admin_view); each panel needs its data's view permission."""
    context = _context(request, title="Operations dashboard", **presenter.dashboard_context(request.user))
    return TemplateResponse(request, "console/dashboard.html", context)


@require_GET
def running_builds(request):
    """Running builds with progress and heartbeat age, refreshed in place."""
    if "queue" not in presenter.visible_panels(request.user):
        raise PermissionDenied
    live = presenter.live_payload(request.user, running_limit=200)
    context = _context(request, title="Running builds", running=live["running"], queue=live["queue"])
    return TemplateResponse(request, "console/running.html", context)


@never_cache
@require_GET
def live(request):
    """JSON for polling: queue depth and running builds. 403 with no data unless staff allowed to view builds."""
    if "queue" not in presenter.visible_panels(request.user):
        return JsonResponse({"error": LIVE_FORBIDDEN}, status=403)
    try:
        limit = min(max(int(request.GET.get("limit", 50)), 1), 200)
    except ValueError:
        limit = 50
    return JsonResponse(presenter.live_payload(request.user, running_limit=limit))
