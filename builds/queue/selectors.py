"""Reads of the build queue for the web layer and the admin."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from itertools import chain

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import Count, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from builds.models import (
    HEX64,
    RUNNING_BUILDS,
    Build,
    BuildArtifact,
    BuildEvent,
    BuildLogChunk,
    BuildMetric,
    BuildResult,
)
from honua.routers import read_connection
from licensing.models import Customer, License

# The text search configuration of build errors: 'simple' (no stemming, no stop words), so package names and
# commands match as written. The index build_queue_error_fts is on exactly this expression.
ERROR_SEARCH_CONFIG = "simple"
BUILD_NUMBER = re.compile(r"^#?(\d{1,18})$")
# Manifest keys whose values an operator searches for: the base image (both spellings) and package names.
MANIFEST_IMAGE_KEYS = ("base_image", "base")
MANIFEST_LIST_KEYS = ("packages",)
CUSTOMERS_MATCHED = 100
# The last lines of one attempt's log: the chunks its worker appended (build_logs, append_build_log), or the log
# that workers before append_build_log stored on the result row. Cut in the database.
LOG_TAIL_SQL = """
(SELECT array_to_string(t.lines[greatest(1, cardinality(t.lines) - %s + 1):], E'\\n')
   FROM (SELECT string_to_array(rtrim(coalesce(
                   (SELECT string_agg(l.chunk, '' ORDER BY l.id) FROM build_logs l
                     WHERE l.build_id = build_results.build_id AND l.attempt = build_results.attempt),
                   build_results.log), E'\\n'), E'\\n') AS lines) t)
"""

LIVE_STATUSES = (Build.Status.QUEUED, Build.Status.RUNNING)


def builds_for_customer(*, customer: Customer, status: str | None = None) -> QuerySet[Build]:
    """A customer's builds, newest first (optionally of one status)."""
    builds = Build.objects.filter(customer=customer).select_related("license")
    return builds.filter(status=status) if status else builds


def builds_active(*, customer: Customer | None = None) -> QuerySet[Build]:
    """Queued and running builds, in claim order (most urgent first, FIFO within a priority)."""
    builds = Build.objects.filter(status__in=LIVE_STATUSES).select_related("customer", "license")
    if customer is not None:
        builds = builds.filter(customer=customer)
    return builds.order_by("-priority", "created_at", "id")


def builds_running() -> QuerySet[Build]:
    """Running builds with their progress, stage, worker and heartbeat, longest-running first."""
    return Build.objects.filter(RUNNING_BUILDS).select_related("customer", "license").order_by("started_at")


def queue_depth_by_priority() -> list[dict]:
    """Per priority (10 first): how many builds are queued, and how many of them are claimable now (not in
    retry backoff)."""
    rows = (
        Build.objects.filter(status=Build.Status.QUEUED)
        .values("priority")
        .annotate(queued=Count("id"), claimable=Count("id", filter=Q(not_before__lte=Now())))
        .order_by("-priority")
    )
    return [dict(row) for row in rows]


def build_timeline(*, build: Build) -> list[dict]:
    """Everything that happened to a build, oldest first: its events, results and artifacts."""
    events = (
        {
            "at": e.created_at,
            "kind": "event",
            "what": e.event_type,
            "from": e.from_status,
            "to": e.to_status,
            "worker_id": e.worker_id,
            "detail": e.message,
        }
        for e in BuildEvent.objects.filter(build_id=build.pk)
    )
    results = (
        {
            "at": r.created_at,
            "kind": "result",
            "what": r.status,
            "from": None,
            "to": None,
            "worker_id": r.worker_id,
            "detail": r.error_message or r.image_digest or "",
        }
        for r in BuildResult.objects.filter(build=build)
    )
    artifacts = (
        {
            "at": a.created_at,
            "kind": "artifact",
            "what": a.kind,
            "from": None,
            "to": None,
            "worker_id": None,
            "detail": a.uri,
        }
        for a in BuildArtifact.objects.filter(build=build)
    )
    return sorted(chain(events, results, artifacts), key=lambda item: (item["at"], item["kind"] != "event"))


def manifest_preview(*, build_id, chars: int) -> tuple[int | None, str, bool]:
    """(bytes of the manifest's JSON text, its first ``chars`` characters indented, whether that is only a part),
    cut by the database so a huge manifest never reaches Python whole; (None, "", False) for no such build."""
    with read_connection().cursor() as cursor:
        cursor.execute(
            "SELECT octet_length(m.manifest::text), left(m.pretty, %s), length(m.pretty) > %s"
            " FROM (SELECT manifest, jsonb_pretty(manifest) AS pretty FROM build_queue WHERE id = %s) m",
            [chars, chars, build_id],
        )
        row = cursor.fetchone()
    return (None, "", False) if row is None else (row[0], row[1], row[2])


def build_log_text(build: Build | uuid.UUID | str, *, attempt: int | None = None) -> str:
    """A build's log as its worker appended it (``append_build_log``): one attempt's, or all, chunks in order."""
    chunks = BuildLogChunk.objects.filter(build_id=build.pk if isinstance(build, Build) else build).order_by("id")
    if attempt is not None:
        chunks = chunks.filter(attempt=attempt)
    return "".join(chunks.values_list("chunk", flat=True))


def error_search_vector() -> SearchVector:
    """The indexed expression of build errors (build_queue_error_fts)."""
    return SearchVector("error_message", config=ERROR_SEARCH_CONFIG)


def builds_search(*, queryset: QuerySet[Build], term: str) -> QuerySet[Build]:
    """Builds of ``queryset`` that ``term`` names: a build number (``#123`` or ``123``), an id, a manifest hash,
    a base image or package of the manifest (exactly, through the manifest's GIN index), words of the error
    (full-text, through build_queue_error_fts), or part of the customer's name. An empty term changes nothing."""
    term = term.strip()
    if not term:
        return queryset
    number = BUILD_NUMBER.match(term)
    if number:
        return queryset.filter(build_number=int(number.group(1)))
    try:
        return queryset.filter(pk=uuid.UUID(term))
    except ValueError:
        pass
    if re.fullmatch(HEX64, term):
        return queryset.filter(manifest_hash=term)
    # Customers first (a small table), so every arm below is an index condition the planner can OR together.
    customers = list(Customer.objects.filter(name__icontains=term).values_list("pk", flat=True)[:CUSTOMERS_MATCHED])
    matches = Q(customer_id__in=customers) if customers else Q(pk__in=[])
    for key in MANIFEST_IMAGE_KEYS:
        matches |= Q(manifest__contains={key: term})
    for key in MANIFEST_LIST_KEYS:
        matches |= Q(manifest__contains={key: [term]})
    words = SearchQuery(term, config=ERROR_SEARCH_CONFIG, search_type="websearch")
    errors = Q(error_message__isnull=False, error_text=words)
    return queryset.alias(error_text=error_search_vector()).filter(matches | errors)


@dataclasses.dataclass(frozen=True)
class Attempt:
    attempt: int
    status: str
    worker_id: str | None
    finished_at: dt.datetime
    queue_wait_ms: int | None
    duration_ms: int | None
    error: str
    log_tail: str


def build_attempts(*, build: Build, log_tail_lines: int = 40) -> list[Attempt]:
    """Each finished attempt of a build, oldest first, with its error and the last lines of its log (the tail is
    cut in the database, so a large log is never loaded whole)."""
    rows = (
        BuildResult.objects.filter(build=build)
        .order_by("created_at", "id")
        .annotate(log_tail=RawSQL(LOG_TAIL_SQL, [log_tail_lines]))
        .defer("log")
    )
    return [
        Attempt(
            attempt=r.attempt,
            status=r.status,
            worker_id=r.worker_id,
            finished_at=r.created_at,
            queue_wait_ms=r.queue_wait_ms,
            duration_ms=r.duration_ms,
            error=r.error_message or "",
            log_tail=r.log_tail or "",
        )
        for r in rows
    ]


def build_metrics(*, build: Build, limit: int = 100) -> list[BuildMetric]:
    """A build's metric samples in recording order (the first ``limit``)."""
    return list(BuildMetric.objects.filter(build_id=build.pk).order_by("recorded_at", "id")[:limit])


# --- the monthly build quota: counted from build_queue (get_license_quota_usage reads its counter) ----------------
# Here, next to the table it counts, not in licensing (which may not import builds).


@dataclasses.dataclass(frozen=True)
class QuotaUsage:
    monthly_quota: int
    used: int
    remaining: int
    period_start: dt.datetime
    period_end: dt.datetime


def license_quota_usage(*, license: License) -> QuotaUsage:
    """This calendar month's (UTC) build quota, use and remainder, from ``get_license_quota_usage``."""
    with read_connection().cursor() as cursor:
        cursor.execute(
            "SELECT monthly_quota, used, remaining, period_start, period_end FROM get_license_quota_usage(%s)",
            [license.pk],
        )
        return QuotaUsage(*cursor.fetchone())


def licenses_with_quota_used(queryset: QuerySet[License] | None = None) -> QuerySet[License]:
    """``queryset`` annotated with ``quota_used`` (this month's builds), computed in the same query."""
    queryset = License.objects.all() if queryset is None else queryset
    return queryset.annotate(quota_used=RawSQL('(SELECT u.used FROM get_license_quota_usage("licenses"."id") u)', ()))
