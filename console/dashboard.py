"""What the dashboard and its live endpoint show: selectors turned into figures and SVG charts.

Each panel is shown only to a user with the view permission of its data, here and in the JSON endpoint, so the
permission is enforced where the data is read and not only in the template.
"""

import datetime as dt

from django.core.cache import cache as django_cache
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from console import charts, selectors
from console.charts import Series

PANEL_PERMISSIONS = {
    "queue": "builds.view_build",
    "cache": "builds.view_buildcacheentry",
    "licenses": "licensing.view_license",
    "conversations": "intake.view_conversation",
    "maintenance": "honua.view_maintenancerun",
}

STATUS_CLASSES = {"succeeded": "s-ok", "failed": "s-fail", "timed_out": "s-timeout", "cancelled": "s-cancel"}


# The 30-day cache and conversation panels change slowly (their closed days come from rollups, only today is read
# live); the dashboard re-fetches its panels every few seconds, so those figures are kept for a minute (per
# process) instead of re-read each time.
SLOW_PANELS_SECONDS = 60


def _slow_moving(name: str, win: selectors.Window, compute):
    """``compute()``, kept for SLOW_PANELS_SECONDS under a key naming the window (so a new day starts afresh)."""
    return django_cache.get_or_set(f"console:{name}:{win.kind}:{win.start.isoformat()}", compute, SLOW_PANELS_SECONDS)


def visible_panels(user) -> set[str]:
    """The panels ``user`` may see (none unless active staff)."""
    if not (user.is_active and user.is_staff):
        return set()
    return {panel for panel, permission in PANEL_PERMISSIONS.items() if user.has_perm(permission)}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def queue_chart(depth: selectors.QueueDepth):
    priorities = list(depth.by_priority)
    return charts.bar_chart(
        [str(p) for p in priorities],
        [
            Series("running", [depth.by_priority[p]["running"] for p in priorities], "s-running"),
            Series("queued", [depth.by_priority[p]["claimable"] for p in priorities], "s-queued"),
            Series(
                "retry backoff",
                [depth.by_priority[p]["queued"] - depth.by_priority[p]["claimable"] for p in priorities],
                "s-timeout",
            ),
        ],
        title="Live builds by priority (10 is the most urgent)",
        height=160,
        x_label="priority",
        y_label="builds",
        integer=True,
    )


def _build_url(build_id: str) -> str:
    try:
        return reverse("admin:builds_build_change", args=[build_id])
    except NoReverseMatch:  # no admin for builds
        return ""


def running_rows(builds: list[selectors.RunningBuild]) -> list[dict]:
    return [
        {
            "id": build.id,
            "url": _build_url(build.id),
            "label": f"#{build.build_number}",
            "customer": build.customer,
            "priority": build.priority,
            "worker": build.worker_id,
            "stage": build.stage,
            "progress": build.progress,
            "retries": build.retry_count,
            "heartbeat_age": _duration(build.heartbeat_age_seconds),
            "heartbeat_timeout": _duration(build.heartbeat_timeout_seconds),
            "stale": build.stale,
        }
        for build in builds
    ]


def live_payload(user, *, running_limit: int = 50) -> dict:
    """The live part of the dashboard (queue depth and running builds), for polling."""
    payload: dict = {"generated_at": timezone.now().isoformat()}
    if "queue" in visible_panels(user):
        depth = selectors.queue_depth()
        payload["queue"] = {
            "queued": depth.queued,
            "claimable": depth.claimable,
            "running": depth.running,
            "by_priority": {str(p): v for p, v in depth.by_priority.items()},
            "chart": str(queue_chart(depth)),
        }
        payload["running"] = running_rows(selectors.running_builds(limit=running_limit))
    return payload


def _seconds_label(value: float) -> str:
    return f"{value:,.0f} s" if value >= 10 else f"{value:.1f} s"


def activity_panel(range_key: str, *, customer_id=None, now: dt.datetime | None = None) -> dict:
    """Throughput, failures and queue wait (p50/p95) over the chosen range, for every customer or one."""
    activity = selectors.build_activity(range_key, customer_id=customer_id, now=now)
    labels = activity.labels()
    every = activity.range.label_every
    unit = f"per {_step_name(activity.range.step)}"
    x_label = "UTC"
    return {
        "figures": activity,
        "throughput_chart": charts.bar_chart(
            labels,
            [Series(s.replace("_", " "), activity.by_status[s], STATUS_CLASSES[s]) for s in STATUS_CLASSES],
            title=f"Finished builds {unit}, {activity.range.label}",
            label_every=every,
            x_label=x_label,
            y_label="builds",
            integer=True,
        ),
        "failures_chart": charts.bar_chart(
            labels,
            [Series("failed or timed out", activity.failures, "s-fail")],
            title=f"Failures {unit}, {activity.range.label}",
            label_every=every,
            x_label=x_label,
            y_label="builds",
            integer=True,
        ),
        "wait_chart": charts.line_chart(
            labels,
            [Series("p50", activity.wait_p50_s, "s-queued"), Series("p95", activity.wait_p95_s, "s-timeout")],
            title=f"Queue wait {unit} (p50 and p95), {activity.range.label}",
            label_every=every,
            x_label=x_label,
            y_label="seconds",
            y_format=_seconds_label,
        ),
    }


def _step_name(step: dt.timedelta) -> str:
    minutes = int(step.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} minutes"
    if minutes < 1440:
        return "hour" if minutes == 60 else f"{minutes // 60} hours"
    return "day"


def dashboard_context(
    user, *, now: dt.datetime | None = None, range_key: str = selectors.DEFAULT_RANGE, customer_id=None
) -> dict:
    """Every panel the user may see, with its figures and charts; build activity over ``range_key`` (1h, 24h, 7d,
    30d) for every customer or ``customer_id``'s."""
    panels = visible_panels(user)
    range_key = range_key if range_key in selectors.RANGES else selectors.DEFAULT_RANGE
    context: dict = {"panels": panels, "range": selectors.RANGES[range_key], "ranges": selectors.RANGES.values()}
    days = selectors.window("day", 30, now=now)
    if "queue" in panels:
        live = live_payload(user)
        context["queue"] = live["queue"]
        context["running"] = live["running"]
        context["activity"] = activity_panel(range_key, customer_id=customer_id, now=now)
        context["pauses"] = selectors.claim_pauses()
        context["globally_paused"] = any(p.scope == "global" for p in context["pauses"])
        context["can_pause"] = user.has_perm("builds.pause_claims")
    if "cache" in panels:
        cache = _slow_moving("cache_activity", days, lambda: selectors.cache_activity(days))
        context["cache"] = {
            "figures": cache,
            "hit_rate_chart": charts.line_chart(
                days.labels(),
                [Series("hit rate", cache.hit_rates, "s-ok")],
                title="Cache hit rate per day, 30 days",
                y_max=1,
                y_label="hit rate",
                y_format=charts.percent,
                label_every=5,
            ),
            "saved_chart": charts.bar_chart(
                days.labels(),
                [Series("hours saved", [ms / 3_600_000 for ms in cache.saved_ms], "s-saved")],
                title="Build time saved by cache hits per day (hours)",
                label_every=5,
                y_label="hours",
                height=140,
            ),
        }
    if "licenses" in panels:
        context["quota"] = selectors.quota_usage_top(limit=10)
        context["expiring"] = selectors.licenses_expiring(days=14)
    if "conversations" in panels:
        talk = _slow_moving("conversation_activity", days, lambda: selectors.conversation_activity(days))
        context["conversations"] = {
            "figures": talk,
            "totals": {
                "conversations": sum(talk.conversations),
                "tokens": sum(talk.tokens),
                "cost": sum(talk.cost),
            },
            "volume_chart": charts.bar_chart(
                days.labels(),
                [Series("conversations", talk.conversations, "s-queued")],
                title="Conversations started per day, 30 days",
                label_every=5,
                y_label="conversations",
                integer=True,
                height=140,
            ),
            "tokens_chart": charts.bar_chart(
                days.labels(),
                [Series("tokens", talk.tokens, "s-running")],
                title="Tokens per day (prompt + completion)",
                label_every=5,
                y_label="tokens",
                integer=True,
                height=140,
            ),
            "cost_chart": charts.line_chart(
                days.labels(),
                [Series("cost", talk.cost, "s-saved")],
                title="Model cost per day (USD)",
                y_label="USD",
                y_format=lambda v: f"${v:,.2f}" if v < 100 else f"${v:,.0f}",
                label_every=5,
                height=140,
            ),
            "satisfaction_chart": charts.line_chart(
                days.labels(),
                [Series("average satisfaction", talk.satisfaction, "s-ok")],
                title="Average satisfaction per day (1 to 5)",
                y_max=5,
                y_label="score",
                label_every=5,
                height=140,
            ),
        }
    if "maintenance" in panels:
        context["maintenance"] = selectors.maintenance_status()
    return context
