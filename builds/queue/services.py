"""Writes to the build queue: thin, typed wrappers over the SQL API (builds/sql/0004_queue.sql).

The database does the work and enforces every rule; these functions check their input first (so a person gets a
clear message before a round trip) and turn the database's errors into this module's exceptions. Messages that
callers rely on are the constants below.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from builds.cache.services import ManifestCredentialError, check_manifest_credentials
from builds.models import Build, BuildArtifact, BuildMetric, ClaimPause
from builds.queue.client import QueueClient
from honua import errors
from licensing.models import Customer

PRIORITY_RANGE = "priority must be an integer from 1 to 10 (10 is the most urgent)"
MANIFEST_NOT_OBJECT = "manifest must be a JSON object"
PROGRESS_RANGE = "progress must be an integer from 0 to 100"
WORKER_ID_EMPTY = "worker id must not be empty"
SUCCESS_NEEDS_IMAGE = "a succeeded build needs an image reference and an image digest"
NOT_RETRYABLE = "only failed, timed-out or cancelled builds can be retried"
# Raised word for word by build_require_artifact_entitlement (builds/sql/0020_entitlements.sql, SQLSTATE HN203).
ARTIFACT_NOT_ENTITLED = (
    "build {build} is not entitled to {kind} artifacts: its license had no {feature} entitlement when it was enqueued"
)
ARTIFACT_KINDS = tuple(BuildArtifact.Kind.values)


# The build queue's exceptions are honua.errors' (one hierarchy, chosen by SQLSTATE); these names stay for callers.
BuildQueueError = errors.HonuaError
BuildInputError = errors.InvalidArgument
LicenseUnusable = errors.LicenseUnusable
QuotaExceeded = errors.QuotaExceeded
BuildNotFound = errors.BuildNotFound
BuildStateError = errors.BuildStateError
BuildNotHeld = errors.BuildNotHeld
InvalidBuildOutput = errors.InvalidBuildOutput
ArtifactNotEntitled = errors.MissingEntitlement


EntitlementMissing = errors.MissingEntitlement  # priority_boost for priorities 9-10, sbom/signing artifacts
InvalidImageReference = errors.InvalidImageReference


URGENT_PRIORITY = 9  # 9 and 10 are the urgent lane: the priority_boost entitlement
ENQUEUE_OUTCOMES = ("created", "duplicate", "cache_hit")
COMPLETE_RESULTS = ("succeeded", "failed", "retryable")
# OCI distribution reference grammar and digest (builds/sql/0016_scheduler.sql mirrors these).
OCI_REFERENCE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
OCI_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _client() -> QueueClient:
    """The SQL API over Django's connection, each call in its own savepoint (errors chosen by SQLSTATE there)."""
    return QueueClient()


def _check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        raise BuildInputError(f"{PRIORITY_RANGE}, got {priority!r}")
    return priority


def _check_image(image_reference: Any, image_digest: Any) -> None:
    reference_ok = isinstance(image_reference, str) and len(image_reference) <= 500
    if not reference_ok or not OCI_REFERENCE.fullmatch(image_reference):
        raise InvalidImageReference(
            f"image reference {str(image_reference)[:200]} does not follow the OCI grammar"
            " ([registry/]repository[:tag])"
        )
    if not isinstance(image_digest, str) or not OCI_DIGEST.fullmatch(image_digest):
        raise InvalidImageReference(
            f"image digest {str(image_digest)[:100]} is not sha256: followed by 64 lowercase hex digits"
        )


def _check_worker_id(worker_id: Any) -> str:
    if not isinstance(worker_id, str) or not worker_id.strip():
        raise BuildInputError(WORKER_ID_EMPTY)
    return worker_id


def _pk(value: Build | uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, Build):
        return value.pk
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise BuildInputError(f"build id must be a UUID, got {value!r}") from None


def build_enqueue(
    *, customer: Customer | uuid.UUID, manifest: Mapping[str, Any], priority: int = 5, source: str = "api"
) -> Build:
    """Queue a build of ``manifest`` for ``customer`` and return it (``build_enqueue_v2`` without the outcome).

    The same manifest already queued or running for the customer returns that build; a usable cache entry
    returns a new build already succeeded. Raises ``LicenseUnusable``, ``QuotaExceeded``, ``EntitlementMissing``,
    ``BuildNotFound`` or ``BuildInputError``.
    """
    build, _outcome = build_enqueue_v2(customer=customer, manifest=manifest, priority=priority, source=source)
    return build


def build_enqueue_v2(
    *, customer: Customer | uuid.UUID, manifest: Mapping[str, Any], priority: int = 5, source: str = "api"
) -> tuple[Build, str]:
    """Queue a build (``enqueue_build_v2``): the build and its outcome, ``created``, ``duplicate`` (that manifest is
    already queued or running for the customer: that build) or ``cache_hit`` (a new build, already succeeded).
    Raises ``LicenseUnusable``, ``QuotaExceeded``, ``EntitlementMissing`` (priority 9-10 without
    ``priority_boost``), ``BuildNotFound`` (unknown customer) or ``BuildInputError``."""
    _check_priority(priority)
    if not isinstance(manifest, Mapping):
        raise BuildInputError(f"{MANIFEST_NOT_OBJECT}, got {type(manifest).__name__}")
    if not isinstance(source, str) or not source.strip():
        raise BuildInputError("source must not be empty")
    customer_id = customer.pk if isinstance(customer, Customer) else customer
    try:  # issue 11: the Python mirror of the manifest_credentials_owned trigger (no query without a reference)
        check_manifest_credentials(customer_id, manifest)
    except ManifestCredentialError as error:
        raise BuildInputError(str(error)) from error
    build_id, outcome = _client().enqueue_build_v2(customer_id, manifest, priority, source)
    return Build.objects.get(pk=build_id), outcome


def builds_claim(*, worker_id: str, limit: int) -> list[Build]:
    """Claim up to ``limit`` builds (1..1000) in the fair order for ``worker_id`` (``claim_builds``)."""
    _check_worker_id(worker_id)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise BuildInputError(f"limit must be an integer from 1 to 1000, got {limit!r}")
    return _client().claim_build_models(Build, worker_id, limit)


def build_complete_v2(
    *,
    build: Build | uuid.UUID | str,
    worker_id: str,
    result: str,
    image_reference: str | None = None,
    image_digest: str | None = None,
    error: str | None = None,
) -> str:
    """Finish an attempt (``complete_build_v2``): ``result`` is ``succeeded``, ``failed`` (permanent) or
    ``retryable``. Returns what the build became: ``succeeded``, ``failed``, ``retrying``, ``cancelled`` (its
    cancellation was requested) or ``not_held`` (the worker does not hold it; nothing changed)."""
    _check_worker_id(worker_id)
    if result not in COMPLETE_RESULTS:
        raise BuildInputError(f"result must be succeeded, failed or retryable, got {result!r}")
    if result == "succeeded":
        if not (image_reference and image_digest):
            raise InvalidImageReference(SUCCESS_NEEDS_IMAGE)
        _check_image(image_reference, image_digest)
    return _client().complete_build_v2(_pk(build), worker_id, result, image_reference, image_digest, error)


def builds_rescue_expired() -> int:
    """Rescue running builds whose lease expired (``rescue_expired_builds``); how many changed."""
    return _client().rescue_expired_builds()


def build_claim(*, worker_id: str) -> Build | None:
    """Claim the most urgent claimable build for ``worker_id`` (``get_next_build_for_worker``), or None."""
    _check_worker_id(worker_id)
    builds = QueueClient(savepoint=False).next_build_models(Build, worker_id)
    return builds[0] if builds else None


def build_update_progress(
    *, build: Build | uuid.UUID | str, worker_id: str, progress: int, stage: str | None = None
) -> bool:
    """Record progress and a heartbeat. False when the worker no longer holds the build (stop working on it):
    it finished elsewhere, was rescued after a missed heartbeat, or was cancelled."""
    _check_worker_id(worker_id)
    if isinstance(progress, bool) or not isinstance(progress, int) or not 0 <= progress <= 100:
        raise BuildInputError(f"{PROGRESS_RANGE}, got {progress!r}")
    return _client().heartbeat(_pk(build), worker_id, progress, stage)


def build_complete(
    *,
    build: Build | uuid.UUID | str,
    worker_id: str,
    succeeded: bool,
    image_reference: str | None = None,
    image_digest: str | None = None,
    error: str | None = None,
) -> bool:
    """Finish a running build (``complete_build``). False, changing nothing, when the worker does not hold it."""
    _check_worker_id(worker_id)
    if succeeded and not (image_reference and image_digest):
        raise BuildInputError(SUCCESS_NEEDS_IMAGE)
    if succeeded:
        _check_image(image_reference, image_digest)
    return _client().complete_build(_pk(build), worker_id, bool(succeeded), image_reference, image_digest, error)


def build_release(*, build: Build | uuid.UUID | str, worker_id: str, reason: str = "worker stopping") -> bool:
    """Hand a running build back to the queue without spending a retry (a worker shutting down)."""
    _check_worker_id(worker_id)
    return _client().release_build(_pk(build), worker_id, reason)


def build_cancel(*, build: Build | uuid.UUID | str, reason: str | None = None) -> str:
    """Cancel a build: ``"cancelled"`` for a queued one (at once), ``"cancel_requested"`` for a running one (its
    worker's next progress report returns false and cancels it). Raises ``BuildStateError`` for a finished one."""
    return _client().cancel_build(_pk(build), reason)


def build_retry(*, build: Build | uuid.UUID | str) -> None:
    """Queue a failed, timed-out or cancelled build again, with its automatic retries renewed."""
    _client().retry_build(_pk(build))


def build_change_priority(*, build: Build | uuid.UUID | str, priority: int) -> None:
    """Change the priority of a queued build (1..10, 10 the most urgent)."""
    _check_priority(priority)
    _client().reprioritize_build(_pk(build), priority)


def build_daily_rollup_fold(*, max_days: int = 31, refold_days: int = 0) -> int:
    """Fold into the build rollups (``fold_build_daily_rollup``) the days marked dirty and the days newly closed,
    one bounded batch of at most ``max_days`` of each per transaction until none is left; ``refold_days`` > 0 also
    re-folds that many last folded days in the first batch. Returns the days folded: 0, with no row written, when
    nothing changed since the last fold. Resumable: each batch commits its days with the new ``folded_through``."""
    total = 0
    refold = refold_days
    while True:
        with transaction.atomic():
            folded = QueueClient(savepoint=False).fold_build_daily_rollup(max_days, refold)
        total += folded
        if folded <= refold:  # nothing beyond the re-folded days: caught up
            return total
        refold = 0


def builds_handle_timeouts() -> int:
    """Rescue running builds with a missed heartbeat or past their timeout (requeue or time out); how many."""
    return _client().handle_build_timeouts()


# --- build output: artifacts, logs, metrics (builds/sql/0022_agent_sql_api.sql) -----------------------------------
# Callable only by the worker holding the running build. The checks below mirror the database's with the same
# messages (so a person gets them before a round trip); the database checks again and decides who holds the build.

ARTIFACT_KIND = "artifact kind must be one of image, sbom, report, log, signature"
ARTIFACT_URI = "artifact uri must be 1 to 1000 characters without spaces or control characters"
ARTIFACT_MEDIA_TYPE = "artifact media type must be type/subtype (e.g. application/spdx+json)"
ARTIFACT_SIZE = "artifact size must be zero or more bytes"
ARTIFACT_DIGEST = "artifact digest must be sha256: followed by 64 lower-case hex digits"
ARTIFACT_METADATA = "artifact metadata must be a JSON object of at most 16384 bytes"
LOG_CHUNK_EMPTY = "log chunk must not be empty"
LOG_CHUNK_MAX_BYTES = 65536
LOG_CHUNK_TOO_LARGE = "log chunk is {size} bytes; at most 65536 bytes per call"
METRIC_NAME = "metric name must be a lower-case letter then letters, digits, _ or . (at most 100)"
METRIC_VALUE = "metric value must be a finite number"
METRIC_UNIT = "metric unit must be at most 32 characters"
NOT_HELD = "does not hold build"

_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_METRIC_NAME = re.compile(r"[a-z][a-z0-9_.]{0,99}")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def check_artifact(*, kind: Any, uri: Any, media_type: Any, size_bytes: Any, digest: Any, metadata: Any = None) -> None:
    """Raise ``InvalidBuildOutput`` (or ``InvalidArgument`` for a missing value) as ``attach_build_artifact``
    would."""
    if kind is None or uri is None or media_type is None or size_bytes is None or digest is None:
        raise errors.InvalidArgument("kind, uri, media type, size and digest of an artifact must not be null")
    if kind not in ARTIFACT_KINDS:
        raise InvalidBuildOutput(f"{ARTIFACT_KIND}, got {kind}")
    if not isinstance(uri, str) or not 1 <= len(uri) <= 1000 or _SPACE_OR_CONTROL.search(uri):
        raise InvalidBuildOutput(ARTIFACT_URI)
    if not isinstance(media_type, str) or len(media_type) > 200 or not _MEDIA_TYPE.fullmatch(media_type):
        raise InvalidBuildOutput(f"{ARTIFACT_MEDIA_TYPE}, got {str(media_type)[:200]}")
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0:
        raise InvalidBuildOutput(f"{ARTIFACT_SIZE}, got {size_bytes}")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidBuildOutput(f"{ARTIFACT_DIGEST}, got {str(digest)[:100]}")
    if metadata is not None and (not isinstance(metadata, Mapping) or len(json.dumps(dict(metadata)).encode()) > 16384):
        raise InvalidBuildOutput(ARTIFACT_METADATA)


def check_log_chunk(chunk: Any) -> None:
    """Raise as ``append_build_log`` would for a missing, empty or oversized chunk."""
    if chunk is None:
        raise errors.InvalidArgument("log chunk must not be null")
    if not isinstance(chunk, str) or chunk == "":
        raise InvalidBuildOutput(LOG_CHUNK_EMPTY)
    size = len(chunk.encode())
    if size > LOG_CHUNK_MAX_BYTES:
        raise InvalidBuildOutput(LOG_CHUNK_TOO_LARGE.format(size=size))


def check_metric(*, name: Any, value: Any, unit: Any = "") -> None:
    """Raise as ``record_build_metric`` would."""
    if name is None or value is None:
        raise errors.InvalidArgument("metric name and value must not be null")
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        raise InvalidBuildOutput(f"{METRIC_NAME}, got {str(name)[:100]}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        shown = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(str(value), value)
        raise InvalidBuildOutput(f"{METRIC_VALUE}, got {shown}")
    if unit is not None and (not isinstance(unit, str) or len(unit) > 32):
        raise InvalidBuildOutput(METRIC_UNIT)


def build_artifact_attach(
    *,
    build: Build | uuid.UUID | str,
    worker_id: str,
    kind: str,
    uri: str,
    media_type: str,
    size_bytes: int,
    digest: str,
    metadata: Mapping[str, Any] | None = None,
) -> BuildArtifact:
    """Record an artifact (image, SBOM, report, log or signature) of the running build ``worker_id`` holds
    (``attach_build_artifact``); attaching the same kind, uri and digest again returns the first. Raises
    ``InvalidBuildOutput``, ``BuildNotFound``, ``BuildNotHeld`` or ``MissingEntitlement`` (an SBOM or signature
    the license does not include)."""
    _check_worker_id(worker_id)
    check_artifact(kind=kind, uri=uri, media_type=media_type, size_bytes=size_bytes, digest=digest, metadata=metadata)
    artifact_id = _client().attach_build_artifact(
        _pk(build), worker_id, kind, uri, media_type, size_bytes, digest, metadata
    )
    return BuildArtifact.objects.get(pk=artifact_id)


def build_log_append(*, build: Build | uuid.UUID | str, worker_id: str, chunk: str) -> int:
    """Append a chunk of output (at most 64 KiB) to the log of the running build ``worker_id`` holds
    (``append_build_log``); returns the chunk's id."""
    _check_worker_id(worker_id)
    check_log_chunk(chunk)
    return _client().append_build_log(_pk(build), worker_id, chunk)


def build_metric_record(
    *, build: Build | uuid.UUID | str, worker_id: str, name: str, value: float, unit: str = ""
) -> BuildMetric:
    """Append a sample about the running build ``worker_id`` holds (``record_build_metric``), e.g.
    ``queue_wait_seconds``, ``layer_bytes``."""
    _check_worker_id(worker_id)
    check_metric(name=name, value=value, unit=unit)
    metric_id = _client().record_build_metric(_pk(build), worker_id, name, value, unit)
    return BuildMetric.objects.get(pk=metric_id)


# --- pause and drain ------------------------------------------------------------------------------------------------

PAUSE_SCOPES = tuple(ClaimPause.Scope.values)
PAUSE_SCOPE_INVALID = "scope must be global, customer or license"


def _check_pause_target(scope: Any, target: Any) -> uuid.UUID | None:
    if scope not in PAUSE_SCOPES:
        raise errors.InvalidArgument(f"{PAUSE_SCOPE_INVALID}, got {scope!r}")
    target_id = getattr(target, "pk", target)
    if scope == ClaimPause.Scope.GLOBAL:
        if target_id is not None:
            raise errors.InvalidArgument("a global pause takes no target")
        return None
    if target_id is None:
        raise errors.InvalidArgument(f"a {scope} pause needs the {scope}'s id")
    try:
        return target_id if isinstance(target_id, uuid.UUID) else uuid.UUID(str(target_id))
    except ValueError:
        raise errors.InvalidArgument(f"a {scope} pause needs the {scope}'s id") from None


def claims_pause(*, scope: str, target: Any = None, reason: str = "", paused_by: str = "") -> ClaimPause:
    """Pause claiming (``pause_claims``): globally, for one customer or for one license (``target``: the object or
    its id). Paused builds stay queued and are never claimed; running builds finish. Pausing what is paused
    already returns the existing pause unchanged."""
    target_id = _check_pause_target(scope, target)
    if len(reason or "") > 500:
        raise errors.InvalidArgument("reason must be at most 500 characters")
    if len(paused_by or "") > 150:
        raise errors.InvalidArgument("paused_by must be at most 150 characters")
    pause_id = _client().pause_claims(scope, target_id, reason or None, paused_by or None)
    return ClaimPause.objects.get(pk=pause_id)


def claims_resume(*, scope: str, target: Any = None) -> bool:
    """Resume claiming (``resume_claims``); idle workers are woken. Returns whether there was a pause to remove."""
    target_id = _check_pause_target(scope, target)
    return _client().resume_claims(scope, target_id)
