"""Reads of the build queue for the web layer and the admin."""

from __future__ import annotations

from itertools import chain

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Now

from builds.models import Build, BuildArtifact, BuildEvent, BuildResult
from licensing.models import Customer

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
    return (
        Build.objects.filter(status=Build.Status.RUNNING).select_related("customer", "license").order_by("started_at")
    )


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
