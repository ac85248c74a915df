"""Maintenance of the build queue. Workers also rescue stuck builds themselves every few seconds; this hourly run
is the safety net for when no worker is running."""

from django.db import connection

from builds.queue import services
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
                "SELECT count(*) FROM build_queue b WHERE b.status = 'running'"
                " AND (b.heartbeat_at < now() - make_interval(secs => b.heartbeat_timeout_seconds)"
                " OR b.started_at < now() - make_interval(secs => b.timeout_seconds))"
            )
            return cursor.fetchone()[0]
    return services.builds_handle_timeouts()
