"""Reads for the operator console. Each selector is one query (two at most) whose cost does not grow with the
history: live builds through the partial indexes on queued/running builds, time windows through the
``created_at``/``accessed_at`` BRIN indexes, and no count over a whole big table.
"""

import dataclasses
import datetime as dt
from collections import defaultdict

from django.db import connection
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Sum
from django.db.models.functions import Coalesce, Now, Trunc
from django.utils import timezone

from builds.models import Build, BuildResult
from builds.selectors import builds_running, queue_depth_by_priority
from honua.registry import SCHEDULES, maintenance_tasks
from intake.models import Conversation
from licensing.models import License

UTC = dt.UTC
FINISHED_STATUSES = ("succeeded", "failed", "timed_out", "cancelled")


# --- time windows -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Window:
    """Buckets ending with the current one: 24 hours by hour, or N days by day (UTC)."""

    kind: str  # "hour" or "day"
    buckets: tuple[dt.datetime, ...]

    @property
    def start(self) -> dt.datetime:
        return self.buckets[0]

    def labels(self) -> list[str]:
        fmt = "%H:00" if self.kind == "hour" else "%d %b"
        return [bucket.strftime(fmt) for bucket in self.buckets]


def window(kind: str, count: int, *, now: dt.datetime | None = None) -> Window:
    now = (now or timezone.now()).astimezone(UTC)
    if kind == "hour":
        last, step = now.replace(minute=0, second=0, microsecond=0), dt.timedelta(hours=1)
    else:
        last, step = now.replace(hour=0, minute=0, second=0, microsecond=0), dt.timedelta(days=1)
    return Window(kind=kind, buckets=tuple(last - step * (count - 1 - i) for i in range(count)))


# --- the queue --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QueueDepth:
    by_priority: dict[int, dict[str, int]]  # priority (10..1) -> {"queued": n, "claimable": n, "running": n}
    queued: int
    claimable: int  # queued builds not in retry backoff
    running: int


def queue_depth() -> QueueDepth:
    """Queued (and of those, claimable now) and running builds by priority: live builds only, both counts through
    the partial indexes on queued and running builds (finished builds are history, not depth)."""
    by_priority = {p: {"queued": 0, "claimable": 0, "running": 0} for p in range(10, 0, -1)}
    for row in queue_depth_by_priority():
        by_priority[row["priority"]].update(queued=row["queued"], claimable=row["claimable"])
    running = Build.objects.filter(status=Build.Status.RUNNING).values("priority").annotate(n=Count("*")).order_by()
    for run in running:
        by_priority[run["priority"]]["running"] = run["n"]
    return QueueDepth(
        by_priority=by_priority,
        queued=sum(v["queued"] for v in by_priority.values()),
        claimable=sum(v["claimable"] for v in by_priority.values()),
        running=sum(v["running"] for v in by_priority.values()),
    )


@dataclasses.dataclass(frozen=True)
class RunningBuild:
    id: str
    customer: str
    priority: int
    worker_id: str
    stage: str
    progress: int
    started_at: dt.datetime
    heartbeat_age_seconds: float | None
    heartbeat_timeout_seconds: int
    retry_count: int

    @property
    def stale(self) -> bool:
        """No heartbeat for longer than the build's heartbeat timeout (handle_build_timeouts will rescue it)."""
        age = self.heartbeat_age_seconds
        return age is None or age > self.heartbeat_timeout_seconds


def running_builds(*, limit: int = 50) -> list[RunningBuild]:
    """Running builds, stalest heartbeat first, with their customer, worker, stage and heartbeat age."""
    age = ExpressionWrapper(Now() - Coalesce("heartbeat_at", "started_at"), output_field=DurationField())
    rows = (
        builds_running()
        .annotate(heartbeat_age=age, customer_name=F("customer__name"))
        .order_by(F("heartbeat_at").asc(nulls_first=True), "started_at")
        .values(
            "id",
            "customer_name",
            "priority",
            "worker_id",
            "stage",
            "progress",
            "started_at",
            "heartbeat_age",
            "heartbeat_timeout_seconds",
            "retry_count",
        )[:limit]
    )
    return [
        RunningBuild(
            id=str(row["id"]),
            customer=row["customer_name"],
            priority=row["priority"],
            worker_id=row["worker_id"] or "",
            stage=row["stage"] or "",
            progress=row["progress"],
            started_at=row["started_at"],  # type: ignore[arg-type]  # never NULL while running (a constraint)
            heartbeat_age_seconds=row["heartbeat_age"].total_seconds() if row["heartbeat_age"] else None,
            heartbeat_timeout_seconds=row["heartbeat_timeout_seconds"],
            retry_count=row["retry_count"],
        )
        for row in rows
    ]


@dataclasses.dataclass(frozen=True)
class Throughput:
    window: Window
    by_status: dict[str, list[int]]  # status -> count per bucket
    finished: int
    succeeded: int
    cache_hits: int  # builds served from the cache in the window (no worker used)
    average_duration_ms: float | None

    @property
    def success_rate(self) -> float | None:
        """Succeeded / (succeeded + failed + timed out); cancelled builds are not the workers' outcome."""
        decided = self.succeeded + sum(sum(self.by_status[s]) for s in ("failed", "timed_out"))
        return self.succeeded / decided if decided else None


def throughput(win: Window) -> Throughput:
    """Finished build attempts per bucket and status (``build_results``), plus cache-served builds."""
    index = {bucket: i for i, bucket in enumerate(win.buckets)}
    by_status = {status: [0] * len(win.buckets) for status in FINISHED_STATUSES}
    rows = (
        BuildResult.objects.filter(created_at__gte=win.start)
        .annotate(bucket=Trunc("created_at", win.kind, tzinfo=UTC))
        .values("bucket", "status")
        .annotate(n=Count("*"), duration=Sum("duration_ms"), timed=Count("duration_ms"))
        .order_by()
    )
    total_duration = timed = 0
    for row in rows:
        i = index.get(row["bucket"])
        if i is not None:
            by_status[row["status"]][i] += row["n"]
        total_duration += row["duration"] or 0
        timed += row["timed"]
    cache_hits = Build.objects.filter(status=Build.Status.SUCCEEDED, created_at__gte=win.start, cache_hit=True).count()
    return Throughput(
        window=win,
        by_status=by_status,
        finished=sum(sum(v) for v in by_status.values()),
        succeeded=sum(by_status["succeeded"]),
        cache_hits=cache_hits,
        average_duration_ms=total_duration / timed if timed else None,
    )


# --- the cache --------------------------------------------------------------------------------------------------

CACHE_ACTIVITY_SQL = """
SELECT date_trunc(%(kind)s, a.accessed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
       count(*) FILTER (WHERE a.hit) AS hits,
       count(*) FILTER (WHERE NOT a.hit) AS misses,
       coalesce(sum(e.build_duration_ms) FILTER (WHERE a.hit), 0) AS saved_ms
FROM build_access_log a
LEFT JOIN build_cache_registry e ON e.id = a.cache_entry_id AND a.hit
WHERE a.accessed_at >= %(start)s
GROUP BY 1
"""


@dataclasses.dataclass(frozen=True)
class CacheActivity:
    window: Window
    hits: list[int]
    misses: list[int]
    saved_ms: list[int]  # build time the hits avoided (the registered build's duration)

    @property
    def hit_rates(self) -> list[float | None]:
        return [h / (h + m) if h + m else None for h, m in zip(self.hits, self.misses, strict=True)]

    @property
    def hit_rate(self) -> float | None:
        lookups = sum(self.hits) + sum(self.misses)
        return sum(self.hits) / lookups if lookups else None

    @property
    def saved_hours(self) -> float:
        return sum(self.saved_ms) / 3_600_000


def cache_activity(win: Window) -> CacheActivity:
    """Cache lookups per bucket from ``build_access_log``: hits, misses and the build time the hits saved."""
    index = {bucket: i for i, bucket in enumerate(win.buckets)}
    hits, misses, saved = ([0] * len(win.buckets) for _ in range(3))
    with connection.cursor() as cursor:
        cursor.execute(CACHE_ACTIVITY_SQL, {"kind": win.kind, "start": win.start})
        for bucket, h, m, s in cursor.fetchall():
            i = index.get(bucket)
            if i is not None:
                hits[i], misses[i], saved[i] = h, m, int(s)
    return CacheActivity(window=win, hits=hits, misses=misses, saved_ms=saved)


# --- licenses ---------------------------------------------------------------------------------------------------

QUOTA_SQL = """
SELECT l.id, c.name, l.tier, l.is_trial, u.monthly_quota, u.used, u.remaining, u.period_end
FROM licenses l
JOIN customers c ON c.id = l.customer_id
CROSS JOIN LATERAL get_license_quota_usage(l.id) u
WHERE l.status = 'active' AND l.deleted_at IS NULL AND c.deleted_at IS NULL
ORDER BY u.used::numeric / greatest(u.monthly_quota, 1) DESC, c.name
LIMIT %(limit)s
"""


@dataclasses.dataclass(frozen=True)
class QuotaUsage:
    license_id: str
    customer: str
    tier: str
    is_trial: bool
    monthly_quota: int
    used: int
    remaining: int
    period_end: dt.datetime

    @property
    def percent(self) -> int:
        return min(round(100 * self.used / self.monthly_quota), 100) if self.monthly_quota else 100


def quota_usage_top(*, limit: int = 10) -> list[QuotaUsage]:
    """The active licenses closest to their monthly quota (``get_license_quota_usage``), fullest first."""
    with connection.cursor() as cursor:
        cursor.execute(QUOTA_SQL, {"limit": limit})
        return [
            QuotaUsage(str(lid), name, tier, trial, quota, used, remaining, end)
            for lid, name, tier, trial, quota, used, remaining, end in cursor.fetchall()
        ]


def licenses_expiring(*, days: int = 14, limit: int = 20) -> list[License]:
    """Active licenses whose ``expires_at`` falls within ``days`` (or has passed, awaiting ``expire_licenses``)."""
    return list(
        License.objects.filter(
            status=License.Status.ACTIVE,
            deleted_at__isnull=True,
            expires_at__isnull=False,
            expires_at__lte=timezone.now() + dt.timedelta(days=days),
        )
        .select_related("customer")
        .only("id", "tier", "status", "is_trial", "expires_at", "customer__name")
        .order_by("expires_at")[:limit]
    )


# --- conversations ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConversationActivity:
    window: Window
    conversations: list[int]
    tokens: list[int]
    cost: list[float]
    satisfaction: list[float | None]  # average score 1..5 of the scored conversations

    @property
    def average_satisfaction(self) -> float | None:
        scored = [s for s in self.satisfaction if s is not None]
        return sum(scored) / len(scored) if scored else None


def conversation_activity(win: Window) -> ConversationActivity:
    """Conversations started per bucket with their tokens, cost and average satisfaction."""
    index = {bucket: i for i, bucket in enumerate(win.buckets)}
    n = len(win.buckets)
    counts, tokens, cost = [0] * n, [0] * n, [0.0] * n
    satisfaction: list[float | None] = [None] * n
    rows = (
        Conversation.objects.filter(started_at__gte=win.start, deleted_at__isnull=True)
        .annotate(bucket=Trunc("started_at", win.kind, tzinfo=UTC))
        .values("bucket")
        .annotate(
            n=Count("*"),
            tokens=Sum(F("prompt_tokens") + F("completion_tokens")),
            cost=Sum("total_cost"),
            satisfaction=Avg("satisfaction_score"),
        )
        .order_by()
    )
    for row in rows:
        i = index.get(row["bucket"])
        if i is not None:
            counts[i], tokens[i] = row["n"], row["tokens"] or 0
            cost[i] = float(row["cost"] or 0)
            satisfaction[i] = float(row["satisfaction"]) if row["satisfaction"] is not None else None
    return ConversationActivity(window=win, conversations=counts, tokens=tokens, cost=cost, satisfaction=satisfaction)


# --- maintenance ------------------------------------------------------------------------------------------------


MAINTENANCE_SQL = """
WITH latest AS (
    SELECT DISTINCT ON (schedule) schedule, run_id
    FROM maintenance_runs
    ORDER BY schedule, started_at DESC
), last_success AS (
    SELECT schedule, max(started_at) AS at
    FROM maintenance_runs
    WHERE outcome = 'succeeded'
    GROUP BY schedule
)
SELECT l.schedule, min(r.started_at), sum(r.duration_ms), sum(r.rows), bool_and(r.outcome = 'succeeded'),
       string_agg(r.task, ', ' ORDER BY r.task) FILTER (WHERE r.outcome = 'failed'), max(s.at)
FROM latest l
JOIN maintenance_runs r ON r.run_id = l.run_id AND r.schedule = l.schedule
LEFT JOIN last_success s ON s.schedule = l.schedule
GROUP BY l.schedule
"""


@dataclasses.dataclass(frozen=True)
class ScheduleStatus:
    schedule: str
    tasks: list[str]
    last_started_at: dt.datetime | None = None
    last_duration_ms: int | None = None
    last_rows: int | None = None
    last_succeeded: bool | None = None
    failed_tasks: str = ""
    last_success_at: dt.datetime | None = None


def maintenance_status() -> list[ScheduleStatus]:
    """Each maintenance schedule: its registered tasks, its last run (``honua.MaintenanceRun``: when, how long,
    rows, whether every task succeeded and which failed), and when a task of it last succeeded."""
    tasks = defaultdict(list)
    for task in maintenance_tasks():
        tasks[task.schedule].append(task.name)
    with connection.cursor() as cursor:
        cursor.execute(MAINTENANCE_SQL)
        last = {row[0]: row[1:] for row in cursor.fetchall()}
    statuses = []
    for schedule in SCHEDULES:
        started, duration, rows, succeeded, failed, success_at = last.get(schedule, (None,) * 6)
        statuses.append(
            ScheduleStatus(
                schedule=schedule,
                tasks=tasks[schedule],
                last_started_at=started,
                last_duration_ms=duration,
                last_rows=rows,
                last_succeeded=succeeded,
                failed_tasks=failed or "",
                last_success_at=success_at,
            )
        )
    return statuses
