"""The build queue's SQL API from Python (docs/sql-api.md): one typed method per SQL function the project calls.

The services, the reference worker, the demo loader and the maintenance dry-run all go through :class:`QueueClient`,
so the SQL text of each call is written here and nowhere else in the project's Python
(``tests/builds/test_queue_client.py`` fails on a second copy of the claim). The ``*_sql`` functions return a call's
:data:`~honua.sqlapi.Statement` for a caller that pipelines several (the worker's finish-and-claim) or reads the
rows as models (the services' ``Build`` instances).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb

from builds.queue.executors import ClaimedBuild
from honua import errors
from honua.sqlapi import SqlApiClient, Statement

# The columns of build_queue a worker needs to run a build (ClaimedBuild's fields, in order).
CLAIMED_COLUMNS = (
    "id, customer_id, license_id, manifest, manifest_hash, priority, retry_count, heartbeat_timeout_seconds, "
    "entitled_outputs"
)

# What the queue's codes mean to the services' callers (their exception names predate honua.errors' finer classes;
# a v1 function's P0002 is an unknown build).
QUEUE_ERRORS: dict[str, type[errors.HonuaError]] = {
    "HN002": errors.InvalidArgument,
    "HN101": errors.BuildNotFound,
    "HN102": errors.BuildNotFound,
    "HN104": errors.InvalidArgument,  # a manifest's registry credential reference: unknown
    "HN205": errors.InvalidArgument,  # a manifest's registry credential reference: another customer's
    "HN302": errors.BuildStateError,
    "P0002": errors.BuildNotFound,
}
# The build-output and pause functions raise HN codes only; they use honua.errors' own classes (BuildNotHeld...).
OUTPUT_ERRORS: dict[str, type[errors.HonuaError]] = {}


def claimed_build(row: Sequence[Any]) -> ClaimedBuild:
    """A claim's row (:data:`CLAIMED_COLUMNS`) as the executor sees it."""
    values = list(row)
    if isinstance(values[3], str):  # Django's psycopg loader leaves jsonb as text
        values[3] = json.loads(values[3])
    if len(values) > 8:  # entitled_outputs (issue 12): a text[] the executor reads as a tuple
        values[8] = tuple(values[8] or ())
    return ClaimedBuild(*values)


# --- statements ---------------------------------------------------------------------------------------------------


def claim_builds_sql(worker_id: str, limit: int, *, columns: str = CLAIMED_COLUMNS) -> Statement:
    """``claim_builds``: up to ``limit`` builds in the fair order, in one round trip."""
    return f"SELECT {columns} FROM claim_builds(%s, %s)", [worker_id, limit]


def next_build_sql(worker_id: str, *, columns: str = CLAIMED_COLUMNS) -> Statement:
    """``get_next_build_for_worker`` (API v1): the most urgent claimable build, or no row."""
    return f"SELECT {columns} FROM get_next_build_for_worker(%s)", [worker_id]


def complete_build_sql(
    build_id: Any,
    worker_id: str,
    succeeded: bool,
    image_reference: str | None,
    image_digest: str | None,
    error: str | None,
) -> Statement:
    """``complete_build`` (API v1): true, or false changing nothing when the worker does not hold the build."""
    return "SELECT complete_build(%s, %s, %s, %s, %s, %s)", [
        build_id,
        worker_id,
        succeeded,
        image_reference,
        image_digest,
        error,
    ]


def append_build_log_sql(build_id: Any, worker_id: str, chunk: str) -> Statement:
    return "SELECT append_build_log(%s, %s, %s)", [build_id, worker_id, chunk]


def record_build_metric_sql(build_id: Any, worker_id: str, name: str, value: float, unit: str = "") -> Statement:
    return "SELECT record_build_metric(%s, %s, %s, %s, %s)", [build_id, worker_id, name, float(value), unit]


def record_queue_wait_sql(build_id: Any, worker_id: str) -> Statement:
    """``record_build_metric`` of ``queue_wait_seconds``: from enqueue to claim, measured by the database."""
    return (
        "SELECT record_build_metric(id, %s, 'queue_wait_seconds', extract(epoch FROM started_at - created_at), 's')"
        " FROM build_queue WHERE id = %s",
        [worker_id, build_id],
    )


def attach_build_artifact_sql(
    build_id: Any,
    worker_id: str,
    kind: str,
    uri: str,
    media_type: str,
    size_bytes: int | None,
    digest: str | None,
    metadata: Mapping[str, Any] | None = None,
) -> Statement:
    return "SELECT attach_build_artifact(%s, %s, %s, %s, %s, %s, %s, %s)", [
        build_id,
        worker_id,
        kind,
        uri,
        media_type,
        size_bytes,
        digest,
        Jsonb(dict(metadata or {})),
    ]


# --- the client ---------------------------------------------------------------------------------------------------


class QueueClient(SqlApiClient):
    """The build queue's SQL functions over one connection (Django's by default, or a psycopg connection)."""

    overrides = QUEUE_ERRORS

    # Enqueue
    def enqueue_build_v2(
        self, customer_id: uuid.UUID, manifest: Mapping[str, Any], priority: int, source: str
    ) -> tuple[uuid.UUID, str]:
        """The build's id and the outcome: ``created``, ``duplicate`` or ``cache_hit``."""
        row = self.row(
            (
                "SELECT build_id, outcome FROM enqueue_build_v2(%s, %s, %s, %s)",
                [customer_id, Jsonb(dict(manifest)), priority, source],
            )
        )
        assert row is not None
        return row[0], row[1]

    # Claim
    def claim_builds(self, worker_id: str, limit: int) -> list[ClaimedBuild]:
        return [claimed_build(row) for row in self.rows(claim_builds_sql(worker_id, limit))]

    def claim_build_models(self, model: Any, worker_id: str, limit: int) -> list[Any]:
        """``claim_builds`` read as ``Build`` instances (every column)."""
        return self.models(model, claim_builds_sql(worker_id, limit, columns="*"))

    def next_build(self, worker_id: str) -> ClaimedBuild | None:
        row = self.row(next_build_sql(worker_id))
        return claimed_build(row) if row else None

    def next_build_models(self, model: Any, worker_id: str) -> list[Any]:
        """``get_next_build_for_worker`` read as ``Build`` instances (zero or one)."""
        return self.models(model, next_build_sql(worker_id, columns="*"))

    # Run
    def heartbeat(self, build_id: Any, worker_id: str, progress: int, stage: str | None) -> bool:
        """``update_build_progress``: record progress and a heartbeat; false when the worker no longer holds it."""
        return bool(
            self.value(("SELECT update_build_progress(%s, %s, %s, %s)", [build_id, worker_id, progress, stage]))
        )

    def append_build_log(self, build_id: Any, worker_id: str, chunk: str) -> int:
        return self.value(append_build_log_sql(build_id, worker_id, chunk), overrides=OUTPUT_ERRORS)

    def record_build_metric(self, build_id: Any, worker_id: str, name: str, value: float, unit: str = "") -> int:
        return self.value(record_build_metric_sql(build_id, worker_id, name, value, unit), overrides=OUTPUT_ERRORS)

    def attach_build_artifact(self, *args: Any) -> int:
        """``attach_build_artifact(build, worker, kind, uri, media_type, size_bytes, digest, metadata)``."""
        return self.value(attach_build_artifact_sql(*args), overrides=OUTPUT_ERRORS)

    def output(self, statement: Statement) -> Any:
        """A build-output statement built by one of the ``*_sql`` functions above (a worker's buffered calls)."""
        return self.value(statement, overrides=OUTPUT_ERRORS)

    # Finish
    def complete_build(
        self,
        build_id: Any,
        worker_id: str,
        succeeded: bool,
        image_reference: str | None = None,
        image_digest: str | None = None,
        error: str | None = None,
    ) -> bool:
        statement = complete_build_sql(build_id, worker_id, succeeded, image_reference, image_digest, error)
        return bool(self.value(statement))

    def complete_build_v2(
        self,
        build_id: Any,
        worker_id: str,
        result: str,
        image_reference: str | None,
        image_digest: str | None,
        error: str | None,
    ) -> str:
        """``succeeded``, ``failed``, ``retrying``, ``cancelled`` or ``not_held``."""
        return self.value(
            (
                "SELECT complete_build_v2(%s, %s, %s, %s, %s, %s)",
                [build_id, worker_id, result, image_reference, image_digest, error],
            )
        )

    def release_build(self, build_id: Any, worker_id: str, reason: str) -> bool:
        return bool(self.value(("SELECT release_build(%s, %s, %s)", [build_id, worker_id, reason])))

    # Wait
    def build_wait(self, waiter: str) -> None:
        """``build_wait``: this agent has an idle slot; send ``slot`` wake-ups (renew within a minute)."""
        self.value(("SELECT build_wait(%s)", [waiter]), overrides=OUTPUT_ERRORS)

    def build_wait_end(self, waiter: str) -> None:
        """``build_wait_end``: this agent's slots are busy again."""
        self.value(("SELECT build_wait_end(%s)", [waiter]))

    # Operators
    def cancel_build(self, build_id: Any, reason: str | None) -> str:
        return self.value(("SELECT cancel_build(%s, %s)", [build_id, reason]), overrides=_P0001_STATE)

    def retry_build(self, build_id: Any) -> None:
        self.value(("SELECT retry_build(%s)", [build_id]), overrides=_P0001_STATE)

    def reprioritize_build(self, build_id: Any, priority: int) -> None:
        self.value(("SELECT reprioritize_build(%s, %s)", [build_id, priority]), overrides=_P0001_STATE)

    def pause_claims(self, scope: str, target_id: Any, reason: str | None, paused_by: str | None) -> int:
        """The pause's id (a new one, or the one already in place)."""
        statement = ("SELECT (pause_claims(%s, %s, %s, %s)).id", [scope, target_id, reason, paused_by])
        return self.value(statement, overrides=OUTPUT_ERRORS)

    def resume_claims(self, scope: str, target_id: Any) -> bool:
        return bool(self.value(("SELECT resume_claims(%s, %s)", [scope, target_id]), overrides=OUTPUT_ERRORS))

    # Maintenance
    def rescue_expired_builds(self) -> int:
        return self.value(("SELECT rescue_expired_builds()", []))

    def handle_build_timeouts(self) -> int:
        return self.value(("SELECT handle_build_timeouts()", []))

    def fold_build_daily_rollup(self, max_days: int, refold_days: int) -> int:
        """One bounded batch of the daily rollup's fold; the days folded (builds/sql/0032_daily_rollup.sql)."""
        return self.value(("SELECT fold_build_daily_rollup(%s, %s)", [max_days, refold_days]))

    def count_daily_rollup_backlog(self) -> int:
        """Days the fold would fold now: the dirty ones plus the closed days not folded yet (its dry run)."""
        return max(
            self.value(
                (
                    "SELECT (SELECT count(*) FROM build_daily_rollup_dirty)"
                    " + coalesce(((now() - interval '15 minutes') AT TIME ZONE 'UTC')::date - 1"
                    " - (SELECT folded_through FROM build_daily_rollup_state WHERE id = 1), 0)",
                    [],
                )
            ),
            0,
        )

    def count_timed_out_builds(self) -> int:
        """How many running builds ``handle_build_timeouts`` would act on now (the maintenance dry run)."""
        return self.value(
            (
                "SELECT count(*) FROM build_queue b WHERE b.status = 'running' AND b.started_at IS NOT NULL"
                " AND (b.heartbeat_at < now() - make_interval(secs => b.heartbeat_timeout_seconds)"
                " OR b.started_at < now() - make_interval(secs => b.timeout_seconds))",
                [],
            )
        )


# A v1 operator function's P0001 is a wrong state (cancel a finished build, retry a queued one).
_P0001_STATE: dict[str, type[errors.HonuaError]] = {**QUEUE_ERRORS, "P0001": errors.BuildStateError}
