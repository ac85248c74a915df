"""Maintenance of the build queue. Workers also rescue stuck builds themselves every few seconds; this hourly run
is the safety net for when no worker is running."""

from builds.queue import services
from builds.queue.client import QueueClient
from honua.registry import maintenance_task


@maintenance_task(
    "handle_build_timeouts",
    schedule="hourly",
    description="Requeue (with backoff) or time out running builds with a missed heartbeat or past their timeout.",
)
def handle_build_timeouts(*, dry_run: bool) -> int:
    if dry_run:
        return QueueClient(savepoint=False).count_timed_out_builds()
    return services.builds_handle_timeouts()


@maintenance_task(
    "build_fold_daily_rollup",
    schedule="hourly",
    description="Fold the newly closed days and the days a late change marked into the build rollups "
    "(build_performance_summary and the dashboard); nothing else is re-folded.",
    transactional=False,
)
def fold_daily_rollup(*, dry_run: bool) -> int:
    if dry_run:
        return QueueClient(savepoint=False).count_daily_rollup_backlog()
    return services.build_daily_rollup_fold()
