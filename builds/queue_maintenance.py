"""Maintenance of the build queue. Workers also rescue stuck builds themselves every few seconds; this hourly run
is the safety net for when no worker is running."""

from django.db import connection

from builds import services
from honua.registry import maintenance_task


@maintenance_task(
    "handle_build_timeouts",
    schedule="hourly",
    description="Requeue (with backoff) or time out running builds with a missed heartbeat or past their timeout.",
)
def handle_build_timeouts(*, dry_run: bool) -> int:
    if dry_run:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM build_queue b WHERE b.status = 'running' AND b.started_at IS NOT NULL"
                " AND (b.heartbeat_at < now() - make_interval(secs => b.heartbeat_timeout_seconds)"
                " OR b.started_at < now() - make_interval(secs => b.timeout_seconds))"
            )
            return cursor.fetchone()[0]
    return services.builds_handle_timeouts()


@maintenance_task(
    "build_fold_daily_rollup",
    schedule="hourly",
    description="Fold closed days of finished builds into build_daily_rollup (build_performance_summary), "
    "re-folding the last two days and any day a late change marked.",
    transactional=False,
)
def fold_daily_rollup(*, dry_run: bool) -> int:
    if dry_run:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT count(*) FROM build_daily_rollup_dirty)"
                " + coalesce(((now() - interval '15 minutes') AT TIME ZONE 'UTC')::date - 1"
                " - (SELECT folded_through FROM build_daily_rollup_state WHERE id = 1), 0)"
            )
            return max(cursor.fetchone()[0], 0)
    return services.build_daily_rollup_fold()
