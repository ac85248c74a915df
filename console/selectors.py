"""Reads for the operator console. Each selector is one query (two at most) whose cost does not grow with the
history: live builds through the partial indexes on queued/running builds; the dashboard's day and hour windows
from rollups of the closed days (``build_activity_daily``, ``build_activity_hourly``, ``build_cache_daily``,
``conversation_daily``) plus today's rows through btree ranges; the last hour through the ``created_at`` BRIN
index; and no count over a whole big table.
"""

import dataclasses
import datetime as dt
import re
from collections import defaultdict
from typing import Any

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Sum
from django.db.models.functions import Coalesce, Now, Trunc
from django.utils import timezone

from builds.models import RUNNING_BUILDS, Build, BuildResult, ClaimPause
from builds.queue.selectors import builds_running, queue_depth_by_priority
from honua.registry import SCHEDULES, maintenance_tasks
from honua.routers import read_connection
from intake.models import Conversation
from intake.selectors import messages_unpriced_count
from licensing.models import Customer, License

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
    running = Build.objects.filter(RUNNING_BUILDS).values("priority").annotate(n=Count("*")).order_by()
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
    build_number: int
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
            "build_number",
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
            build_number=row["build_number"],
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


# Day buckets from build_cache_daily for the folded days (within the days it keeps) that are not marked dirty, and
# build_cache_daily_figures over the log for the rest (today, the days after folded_through, the dirty days): the
# figures of CACHE_ACTIVITY_SQL at a cost that follows the days, not a month of lookups
# (builds/sql/0035_dashboard_rollups.sql). One row per day.
CACHE_DAILY_SQL = """
WITH bounds AS (
    SELECT greatest(%(start_day)s::date, (now() AT TIME ZONE 'UTC')::date - build_cache_daily_days()) AS first,
           (SELECT s.folded_through FROM build_daily_rollup_state s WHERE s.id = 1) AS last
), live AS (
    SELECT %(start)s::timestamptz AS from_, 'infinity'::timestamptz AS to_
      FROM bounds b WHERE b.last IS NULL OR b.last < b.first
    UNION ALL
    SELECT %(start)s::timestamptz, b.first::timestamp AT TIME ZONE 'UTC'
      FROM bounds b WHERE b.last >= b.first AND %(start)s::timestamptz < b.first::timestamp AT TIME ZONE 'UTC'
    UNION ALL
    SELECT (b.last + 1)::timestamp AT TIME ZONE 'UTC', 'infinity'::timestamptz
      FROM bounds b WHERE b.last >= b.first
    UNION ALL
    SELECT d.day::timestamp AT TIME ZONE 'UTC', (d.day + 1)::timestamp AT TIME ZONE 'UTC'
      FROM build_daily_rollup_dirty d, bounds b WHERE d.day >= b.first AND d.day <= b.last
)
SELECT c.day, c.hits, c.misses, c.saved_ms
  FROM build_cache_daily c, bounds b
 WHERE c.day >= b.first AND c.day <= b.last
   AND NOT EXISTS (SELECT 1 FROM build_daily_rollup_dirty d WHERE d.day = c.day)
UNION ALL
SELECT f.day, f.hits, f.misses, f.saved_ms
  FROM live l CROSS JOIN LATERAL build_cache_daily_figures(l.from_, l.to_) f
"""


def cache_activity(win: Window) -> CacheActivity:
    """Cache lookups per bucket from ``build_access_log``: hits, misses and the build time the hits saved. Day
    buckets read the closed days from ``build_cache_daily`` and today (and any day not folded) from the log."""
    hits, misses, saved = ([0] * len(win.buckets) for _ in range(3))
    with read_connection().cursor() as cursor:
        if win.kind == "day":
            index = {bucket.date(): i for i, bucket in enumerate(win.buckets)}
            cursor.execute(CACHE_DAILY_SQL, {"start": win.start, "start_day": win.start.date()})
        else:
            index = {bucket: i for i, bucket in enumerate(win.buckets)}
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
    with read_connection().cursor() as cursor:
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
    # Issue 17: messages in the window whose usage no model price covered (their cost reads 0; not known to be 0).
    unpriced_messages: int = 0

    @property
    def average_satisfaction(self) -> float | None:
        scored = [s for s in self.satisfaction if s is not None]
        return sum(scored) / len(scored) if scored else None


# Day buckets from conversation_daily for the folded days that are not marked dirty, and conversation_daily_figures
# over the conversations for the rest (today, the days after folded_through, the dirty days): the figures of the
# query over the window's conversations (intake/sql/0011_conversation_daily.sql). One row per day.
CONVERSATION_DAILY_SQL = """
WITH st AS (
    SELECT (SELECT s.folded_through FROM conversation_daily_state s WHERE s.id = 1) AS through
), live AS (
    SELECT greatest(%(start)s::timestamptz, coalesce((st.through + 1)::timestamp AT TIME ZONE 'UTC', '-infinity'))
           AS from_, 'infinity'::timestamptz AS to_
      FROM st
    UNION ALL
    SELECT d.day::timestamp AT TIME ZONE 'UTC', (d.day + 1)::timestamp AT TIME ZONE 'UTC'
      FROM conversation_daily_dirty d, st
     WHERE d.day >= %(start_day)s AND d.day <= st.through
), rows_ AS (
    SELECT c.day, c.conversations, c.tokens, c.cost, c.satisfaction_sum, c.satisfaction_count
      FROM conversation_daily c, st
     WHERE c.day >= %(start_day)s AND c.day <= st.through
       AND NOT EXISTS (SELECT 1 FROM conversation_daily_dirty d WHERE d.day = c.day)
    UNION ALL
    SELECT f.day, f.conversations, f.tokens, f.cost, f.satisfaction_sum, f.satisfaction_count
      FROM live l CROSS JOIN LATERAL conversation_daily_figures(l.from_, l.to_) f
)
SELECT r.day, r.conversations, r.tokens, r.cost,
       r.satisfaction_sum::numeric / nullif(r.satisfaction_count, 0)::numeric
  FROM rows_ r
"""


def conversation_activity(win: Window) -> ConversationActivity:
    """Conversations started per bucket with their tokens, cost and average satisfaction. Day buckets read the
    closed days from ``conversation_daily`` and today (and any day not folded) from the conversations."""
    index = {bucket: i for i, bucket in enumerate(win.buckets)}
    n = len(win.buckets)
    counts, tokens, cost = [0] * n, [0] * n, [0.0] * n
    satisfaction: list[float | None] = [None] * n
    if win.kind == "day":
        days = {bucket.date(): i for i, bucket in enumerate(win.buckets)}
        with read_connection().cursor() as cursor:
            cursor.execute(CONVERSATION_DAILY_SQL, {"start": win.start, "start_day": win.start.date()})
            for day, n_conversations, n_tokens, day_cost, day_satisfaction in cursor.fetchall():
                i = days.get(day)
                if i is not None:
                    counts[i], tokens[i], cost[i] = n_conversations, int(n_tokens), float(day_cost)
                    satisfaction[i] = float(day_satisfaction) if day_satisfaction is not None else None
        return ConversationActivity(
            window=win,
            conversations=counts,
            tokens=tokens,
            cost=cost,
            satisfaction=satisfaction,
            unpriced_messages=messages_unpriced_count(since=win.start),  # issue 17
        )
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
    return ConversationActivity(
        window=win,
        conversations=counts,
        tokens=tokens,
        cost=cost,
        satisfaction=satisfaction,
        unpriced_messages=messages_unpriced_count(since=win.start),  # issue 17
    )


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
    with read_connection().cursor() as cursor:
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


# --- build activity over a chosen range (charts) -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Range:
    """A range an operator picks on the dashboard: its buckets' width and how many."""

    key: str
    label: str
    step: dt.timedelta
    buckets: int
    label_format: str
    label_every: int  # a tick label on every n-th bucket

    def window(self, *, now: dt.datetime | None = None) -> list[dt.datetime]:
        """Bucket starts, oldest first, the last one holding ``now``; aligned to the step (from the epoch)."""
        now = (now or timezone.now()).astimezone(UTC)
        epoch = dt.datetime(2000, 1, 1, tzinfo=UTC)
        last = epoch + (now - epoch) // self.step * self.step
        return [last - self.step * (self.buckets - 1 - i) for i in range(self.buckets)]


RANGES = {
    r.key: r
    for r in (
        Range("1h", "last hour", dt.timedelta(minutes=5), 12, "%H:%M", 2),
        Range("24h", "24 hours", dt.timedelta(hours=1), 24, "%H:00", 3),
        Range("7d", "7 days", dt.timedelta(hours=6), 28, "%d %b", 4),
        Range("30d", "30 days", dt.timedelta(days=1), 30, "%d %b", 5),
    )
}
DEFAULT_RANGE = "24h"

BUILD_ACTIVITY_SQL = """
SELECT date_bin(%(step)s, r.created_at, %(origin)s) AS bucket, r.status, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.queue_wait_ms) AS wait_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY r.queue_wait_ms) AS wait_p95,
       sum(r.duration_ms) AS duration, count(r.duration_ms) AS timed
FROM build_results r
{customer_join}
WHERE r.created_at >= %(start)s
GROUP BY GROUPING SETS ((1, 2), (1), ())
"""
CUSTOMER_JOIN = "JOIN build_queue b ON b.id = r.build_id AND b.customer_id = %(customer)s"
CACHE_SERVED_SQL = """
SELECT count(*) FROM build_queue
WHERE created_at >= %(start)s AND cache_hit {customer_filter}
"""


# The 30-day range (day buckets) from build_activity_daily for the folded days that are not marked dirty, and
# build_activity_daily_figures over the results for the rest (the days after folded_through and the dirty days):
# the same figures as BUILD_ACTIVITY_SQL, at a cost that follows the days, not the builds of a month
# (builds/sql/0033_dashboard_rollup.sql). One row per day for the selection, then the whole range (day NULL).
# Every customer's rows (customer NULL) come from the partial index build_activity_daily_all_idx, and the range's
# two percentiles from one sort of its waits (builds/sql/0042_fold_dirty_days.sql).
BUILD_ACTIVITY_DAILY_SQL = """
WITH st AS (
    SELECT (SELECT s.folded_through FROM build_daily_rollup_state s WHERE s.id = 1) AS through
), live_days AS (
    SELECT greatest(%(start)s::timestamptz, coalesce((st.through + 1)::timestamp AT TIME ZONE 'UTC', '-infinity'))
           AS from_, 'infinity'::timestamptz AS to_
      FROM st
    UNION ALL
    SELECT d.day::timestamp AT TIME ZONE 'UTC', (d.day + 1)::timestamp AT TIME ZONE 'UTC'
      FROM build_daily_rollup_dirty d, st
     WHERE d.day >= %(start_day)s AND d.day <= st.through
), rows_ AS (
    SELECT a.day, a.succeeded, a.failed, a.timed_out, a.cancelled, a.duration_ms_sum, a.timed, a.queue_wait_ms,
           a.wait_p50_ms, a.wait_p95_ms, a.cache_served
      FROM build_activity_daily a, st
     WHERE a.day >= %(start_day)s AND a.day <= st.through
       AND (a.customer_id = %(customer)s::uuid OR (%(customer)s::uuid IS NULL AND a.customer_id IS NULL))
       AND NOT EXISTS (SELECT 1 FROM build_daily_rollup_dirty d WHERE d.day = a.day)
    UNION ALL
    SELECT f.day, f.succeeded, f.failed, f.timed_out, f.cancelled, f.duration_ms_sum, f.timed, f.queue_wait_ms,
           f.wait_p50_ms, f.wait_p95_ms, f.cache_served
      FROM live_days l
     CROSS JOIN LATERAL build_activity_daily_figures(l.from_, l.to_) f
     WHERE f.customer_id IS NOT DISTINCT FROM %(customer)s::uuid
)
SELECT r.day, r.succeeded, r.failed, r.timed_out, r.cancelled, r.wait_p50_ms, r.wait_p95_ms,
       NULL::numeric, NULL::bigint, NULL::bigint
  FROM rows_ r
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, t.waits[1], t.waits[2], t.duration_ms_sum, t.timed, t.cache_served
  FROM (SELECT (SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY w)
                  FROM rows_ x, unnest(x.queue_wait_ms) w) AS waits,
               sum(r.duration_ms_sum) AS duration_ms_sum, sum(r.timed) AS timed,
               sum(r.cache_served) AS cache_served
          FROM rows_ r) t
"""


# The ranges of hour-multiple buckets (24h by the hour, 7d by six hours) from build_activity_hourly for the folded
# days that are not marked dirty, and build_activity_hourly_figures over the results for the rest (today, the days
# after folded_through, the dirty days): the figures of BUILD_ACTIVITY_SQL (builds/sql/0035_dashboard_rollups.sql).
# One row per bucket for the selection, then the whole range (bucket NULL). As the daily query: the every-customer
# rows through build_activity_hourly_all_idx, one sort of the range's waits.
BUILD_ACTIVITY_HOURLY_SQL = """
WITH st AS (
    SELECT (SELECT s.folded_through FROM build_daily_rollup_state s WHERE s.id = 1) AS through
), live AS (
    SELECT greatest(%(start)s::timestamptz, coalesce((st.through + 1)::timestamp AT TIME ZONE 'UTC', '-infinity'))
           AS from_, 'infinity'::timestamptz AS to_
      FROM st
    UNION ALL
    SELECT greatest(%(start)s::timestamptz, d.day::timestamp AT TIME ZONE 'UTC'),
           (d.day + 1)::timestamp AT TIME ZONE 'UTC'
      FROM build_daily_rollup_dirty d, st
     WHERE d.day >= %(start_day)s AND d.day <= st.through
), rows_ AS (
    SELECT h.hour, h.succeeded, h.failed, h.timed_out, h.cancelled, h.duration_ms_sum, h.timed, h.queue_wait_ms,
           h.cache_served
      FROM build_activity_hourly h, st
     WHERE h.hour >= %(start)s AND h.hour < (st.through + 1)::timestamp AT TIME ZONE 'UTC'
       AND (h.customer_id = %(customer)s::uuid OR (%(customer)s::uuid IS NULL AND h.customer_id IS NULL))
       AND NOT EXISTS (SELECT 1 FROM build_daily_rollup_dirty d WHERE d.day = (h.hour AT TIME ZONE 'UTC')::date)
    UNION ALL
    SELECT f.hour, f.succeeded, f.failed, f.timed_out, f.cancelled, f.duration_ms_sum, f.timed, f.queue_wait_ms,
           f.cache_served
      FROM live l
     CROSS JOIN LATERAL build_activity_hourly_figures(l.from_, l.to_) f
     WHERE f.customer_id IS NOT DISTINCT FROM %(customer)s::uuid
), binned AS (
    SELECT date_bin(%(step)s, r.hour, %(origin)s) AS bucket, r.* FROM rows_ r
), counts AS (
    SELECT b.bucket, sum(b.succeeded) AS succeeded, sum(b.failed) AS failed, sum(b.timed_out) AS timed_out,
           sum(b.cancelled) AS cancelled
      FROM binned b GROUP BY b.bucket
), waits AS (
    SELECT b.bucket, percentile_cont(0.5) WITHIN GROUP (ORDER BY w) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY w) AS p95
      FROM binned b, unnest(b.queue_wait_ms) w GROUP BY b.bucket
)
SELECT c.bucket, c.succeeded, c.failed, c.timed_out, c.cancelled, w.p50, w.p95, NULL::numeric, NULL::numeric,
       NULL::numeric
  FROM counts c LEFT JOIN waits w ON w.bucket = c.bucket
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, t.waits[1], t.waits[2], t.duration_ms_sum, t.timed, t.cache_served
  FROM (SELECT (SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY w)
                  FROM rows_ x, unnest(x.queue_wait_ms) w) AS waits,
               sum(r.duration_ms_sum) AS duration_ms_sum, sum(r.timed) AS timed,
               sum(r.cache_served) AS cache_served
          FROM rows_ r) t
"""


@dataclasses.dataclass(frozen=True)
class BuildActivity:
    """Finished attempts over a range (``build_results``): per bucket and status, queue-wait percentiles, and
    totals over the whole range."""

    range: Range
    buckets: list[dt.datetime]
    by_status: dict[str, list[int]]
    wait_p50_s: list[float | None]  # queue wait in seconds, per bucket
    wait_p95_s: list[float | None]
    total_wait_p50_s: float | None
    total_wait_p95_s: float | None
    average_duration_ms: float | None
    cache_served: int

    def labels(self) -> list[str]:
        return [bucket.strftime(self.range.label_format) for bucket in self.buckets]

    @property
    def finished(self) -> int:
        return sum(sum(v) for v in self.by_status.values())

    @property
    def failures(self) -> list[int]:
        return [f + t for f, t in zip(self.by_status["failed"], self.by_status["timed_out"], strict=True)]

    @property
    def success_rate(self) -> float | None:
        """Succeeded / (succeeded + failed + timed out); cancelled builds are not the workers' outcome."""
        succeeded = sum(self.by_status["succeeded"])
        decided = succeeded + sum(self.failures)
        return succeeded / decided if decided else None


def _seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000


class _ActivityTally:
    """``BuildActivity``'s figures as they are read, bucket by bucket: counts per status, queue-wait percentiles, and
    the whole range's totals."""

    def __init__(self, buckets: int) -> None:
        self.by_status = {status: [0] * buckets for status in FINISHED_STATUSES}
        self.p50: list[float | None] = [None] * buckets
        self.p95: list[float | None] = [None] * buckets
        self.total_p50: float | None = None
        self.total_p95: float | None = None
        self.average: float | None = None

    def wait(self, i: int, wait_p50, wait_p95) -> None:
        self.p50[i], self.p95[i] = _seconds(wait_p50), _seconds(wait_p95)

    def totals(self, wait_p50, wait_p95, duration, timed) -> None:
        self.total_p50, self.total_p95 = _seconds(wait_p50), _seconds(wait_p95)
        self.average = (duration or 0) / timed if timed else None

    def activity(self, chosen: Range, buckets: list[dt.datetime], cache_served: int) -> BuildActivity:
        return BuildActivity(
            range=chosen,
            buckets=buckets,
            by_status=self.by_status,
            wait_p50_s=self.p50,
            wait_p95_s=self.p95,
            total_wait_p50_s=self.total_p50,
            total_wait_p95_s=self.total_p95,
            average_duration_ms=self.average,
            cache_served=cache_served,
        )


def build_activity(range_key: str, *, customer_id=None, now: dt.datetime | None = None) -> BuildActivity:
    """Throughput, failures and queue-wait p50/p95 per bucket of the range, for every customer or one. The 30-day
    range reads the daily rollup, the 24-hour and 7-day ranges the hourly one, for the folded days, and today's
    results live; the last hour reads its results (the ``created_at`` BRIN index) and cache-served builds."""
    chosen = RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    buckets = chosen.window(now=now)
    if chosen.step == dt.timedelta(days=1):
        return _build_activity_daily(chosen, buckets, customer_id)
    if chosen.step >= dt.timedelta(hours=1):
        return _build_activity_hourly(chosen, buckets, customer_id)
    index = {bucket: i for i, bucket in enumerate(buckets)}
    tally = _ActivityTally(len(buckets))
    params = {
        "step": chosen.step,
        "origin": dt.datetime(2000, 1, 1, tzinfo=UTC),
        "start": buckets[0],
        "customer": customer_id,
    }
    sql = BUILD_ACTIVITY_SQL.format(customer_join=CUSTOMER_JOIN if customer_id else "")
    with read_connection().cursor() as cursor:
        cursor.execute(sql, params)
        for bucket, status, count, wait_p50, wait_p95, duration, timed in cursor.fetchall():
            if bucket is None:  # the whole range
                tally.totals(wait_p50, wait_p95, duration, timed)
                continue
            i = index.get(bucket.astimezone(UTC))
            if i is None:
                continue
            if status is None:
                tally.wait(i, wait_p50, wait_p95)
            elif status in tally.by_status:
                tally.by_status[status][i] += count
        cursor.execute(
            CACHE_SERVED_SQL.format(customer_filter="AND customer_id = %(customer)s" if customer_id else ""), params
        )
        (cache_served,) = cursor.fetchone()
    return tally.activity(chosen, buckets, cache_served)


def _build_activity_daily(chosen: Range, buckets: list[dt.datetime], customer_id) -> BuildActivity:
    """``build_activity`` for a range of day buckets, from the daily rollup and the live days
    (BUILD_ACTIVITY_DAILY_SQL); the same figures as the query over the range's results."""
    index = {bucket.date(): i for i, bucket in enumerate(buckets)}
    tally = _ActivityTally(len(buckets))
    cache_served = 0
    params = {"start": buckets[0], "start_day": buckets[0].date(), "customer": customer_id}
    with read_connection().cursor() as cursor:
        cursor.execute(BUILD_ACTIVITY_DAILY_SQL, params)
        for day, succeeded, failed, timed_out, cancelled, wait_p50, wait_p95, duration, timed, served in cursor:
            if day is None:  # the whole range
                tally.totals(wait_p50, wait_p95, duration, timed)
                cache_served = int(served or 0)
                continue
            i = index.get(day)
            if i is None:
                continue
            for status, count in zip(FINISHED_STATUSES, (succeeded, failed, timed_out, cancelled), strict=True):
                tally.by_status[status][i] += count
            if succeeded + failed + timed_out + cancelled:
                tally.wait(i, wait_p50, wait_p95)
    return tally.activity(chosen, buckets, cache_served)


def _build_activity_hourly(chosen: Range, buckets: list[dt.datetime], customer_id) -> BuildActivity:
    """``build_activity`` for a range of buckets a whole number of hours wide (24h, 7d), from the hourly rollup of
    the folded days and the live rows of the rest (BUILD_ACTIVITY_HOURLY_SQL); the same figures as the query over
    the range's results."""
    index = {bucket: i for i, bucket in enumerate(buckets)}
    tally = _ActivityTally(len(buckets))
    cache_served = 0
    params = {
        "step": chosen.step,
        "origin": dt.datetime(2000, 1, 1, tzinfo=UTC),
        "start": buckets[0],
        "start_day": buckets[0].date(),
        "customer": customer_id,
    }
    with read_connection().cursor() as cursor:
        cursor.execute(BUILD_ACTIVITY_HOURLY_SQL, params)
        for bucket, succeeded, failed, timed_out, cancelled, wait_p50, wait_p95, duration, timed, served in cursor:
            if bucket is None:  # the whole range
                tally.totals(wait_p50, wait_p95, duration, timed)
                cache_served = int(served or 0)
                continue
            i = index.get(bucket.astimezone(UTC))
            if i is None:
                continue
            for status, count in zip(FINISHED_STATUSES, (succeeded, failed, timed_out, cancelled), strict=True):
                tally.by_status[status][i] += int(count)
            if succeeded + failed + timed_out + cancelled:
                tally.wait(i, wait_p50, wait_p95)
    return tally.activity(chosen, buckets, cache_served)


# --- workers ----------------------------------------------------------------------------------------------------

WORKERS_SQL = """
WITH held AS (
    SELECT worker_id, count(*) AS held, max(heartbeat_at) AS heartbeat_at, max(started_at) AS claimed_at
    FROM build_queue WHERE status = 'running' AND started_at IS NOT NULL GROUP BY worker_id
), finished AS (
    SELECT worker_id,
           count(*) FILTER (WHERE status = 'succeeded') AS done,
           count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
           max(created_at) AS last_finished_at
    FROM build_results
    WHERE created_at >= now() - %(since)s AND worker_id IS NOT NULL
    GROUP BY worker_id
), claimed AS (
    SELECT worker_id, max(created_at) AS claimed_at
    FROM build_events
    WHERE created_at >= now() - %(since)s AND event_type = 'claimed' AND worker_id IS NOT NULL
    GROUP BY worker_id
)
SELECT coalesce(h.worker_id, f.worker_id, c.worker_id) AS worker_id, coalesce(h.held, 0), h.heartbeat_at,
       greatest(h.claimed_at, c.claimed_at), coalesce(f.done, 0), coalesce(f.failed, 0), f.last_finished_at
FROM held h
FULL JOIN finished f ON f.worker_id = h.worker_id
FULL JOIN claimed c ON c.worker_id = coalesce(h.worker_id, f.worker_id)
ORDER BY 1
LIMIT %(limit)s
"""
# The reference worker's ids: "<host>-<8 hex>" for the process, "/<slot>" for each of its slots (builds/queue/worker).
WORKER_ID_PATTERN = re.compile(r"^(?P<host>.+)-(?P<process>[0-9a-f]{8})(?:/(?P<slot>\d+))?$")


@dataclasses.dataclass(frozen=True)
class Worker:
    worker_id: str
    host: str  # "" when the id does not follow the reference worker's form
    slot: str
    held: int
    last_heartbeat_at: dt.datetime | None
    last_claimed_at: dt.datetime | None
    done_last_hour: int
    failed_last_hour: int
    last_finished_at: dt.datetime | None

    @property
    def last_seen_at(self) -> dt.datetime | None:
        times = [t for t in (self.last_heartbeat_at, self.last_claimed_at, self.last_finished_at) if t]
        return max(times) if times else None


def workers(*, since: dt.timedelta = dt.timedelta(hours=1), limit: int = 500) -> list[Worker]:
    """Every worker id that holds a running build, claimed one or finished one within ``since``: builds held,
    last heartbeat and claim, builds done and failed within ``since``. The host comes from the id where the
    worker follows the reference worker's naming (it reports no pid)."""
    with read_connection().cursor() as cursor:
        params: dict[str, Any] = {"since": since, "limit": limit}  # psycopg adapts a timedelta to an interval
        cursor.execute(WORKERS_SQL, params)
        rows = cursor.fetchall()
    result = []
    for worker_id, held, heartbeat, claimed, done, failed, finished in rows:
        match = WORKER_ID_PATTERN.match(worker_id)
        result.append(
            Worker(
                worker_id=worker_id,
                host=match["host"] if match else "",
                slot=(match["slot"] or "") if match else "",
                held=held,
                last_heartbeat_at=heartbeat,
                last_claimed_at=claimed,
                done_last_hour=done,
                failed_last_hour=failed,
                last_finished_at=finished,
            )
        )
    return result


def customers_for_filter(*, limit: int = 500) -> list[tuple[str, str]]:
    """(id, name) of the customers an operator can narrow the charts to, by name."""
    from licensing.models import Customer

    rows = Customer.objects.filter(deleted_at__isnull=True).order_by("name").values_list("id", "name")[:limit]
    return [(str(pk), name) for pk, name in rows]


@dataclasses.dataclass(frozen=True)
class PauseRow:
    scope: str
    target_id: Any
    target_name: str
    paused_at: dt.datetime
    paused_by: str
    reason: str


def claim_pauses(*, limit: int = 200) -> list[PauseRow]:
    """What is paused (pause and drain) and since when: the global pause first, then the newest; each customer's
    or license's name (two primary-key lookups for the whole list)."""
    pauses = list(ClaimPause.objects.order_by("scope", "-paused_at")[:limit])
    pauses.sort(key=lambda p: (p.scope != ClaimPause.Scope.GLOBAL, -p.paused_at.timestamp()))
    ids = {p.target_id for p in pauses if p.target_id is not None}
    customers = dict(Customer.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    licenses = (
        {lic.pk: str(lic) for lic in License.objects.filter(pk__in=ids).select_related("customer")} if ids else {}
    )
    names = {**customers, **licenses}
    return [
        PauseRow(
            scope=p.scope,
            target_id=p.target_id,
            target_name="all claiming" if p.target_id is None else names.get(p.target_id, str(p.target_id)),
            paused_at=p.paused_at,
            paused_by=p.paused_by,
            reason=p.reason,
        )
        for p in pauses
    ]
