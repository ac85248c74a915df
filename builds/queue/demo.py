"""Demo data for the build queue: a small queue across the demo customers, in every state (queued, running with
progress, succeeded with an SBOM, failed, cancelled, a cache hit). Idempotent: demo builds carry source "demo",
and once any exist nothing more is added. Customers and licenses are the licensing demo's; only when none exist
does it create three of its own."""

import hashlib

from builds.models import Build
from builds.queue import services
from builds.queue.client import QueueClient
from builds.queue.executors import ClaimedBuild, image_for
from honua.registry import demo_loader
from licensing.models import Customer
from licensing.selectors import usable_licenses
from licensing.services import customer_create, license_issue

SOURCE = "demo"
MANIFESTS = [
    {"base": "python:3.12-slim", "packages": ["flask", "gunicorn"], "architectures": ["amd64"]},
    {"base": "node:22-alpine", "packages": ["express"], "architectures": ["amd64", "arm64"]},
    {"base": "eclipse-temurin:21-jre", "packages": ["spring-boot"], "architectures": ["amd64"]},
    {"base": "golang:1.23", "packages": ["grpc"], "architectures": ["arm64"]},
    {"base": "ruby:3.3", "packages": ["rails", "puma"], "architectures": ["amd64"]},
    {"base": "rust:1.82-slim", "packages": ["axum"], "architectures": ["amd64"]},
    {"base": "nginx:1.27", "packages": ["brotli"], "architectures": ["amd64", "arm64"]},
    {"base": "postgres:17", "packages": ["pgvector"], "architectures": ["amd64"]},
]


def _usable_customers() -> list[Customer]:
    licensed = usable_licenses().values("customer")
    return list(Customer.objects.filter(pk__in=licensed, deleted_at__isnull=True).order_by("name"))


def _create_customers() -> list[Customer]:
    customers = []
    for name, tier in (("Demo Core Co", "core"), ("Demo Pro Ltd", "pro"), ("Demo Enterprise Inc", "enterprise")):
        customer = customer_create(name=name, contact_email=f"ops@{tier}.example")
        license_issue(customer=customer, tier=tier)
        customers.append(customer)
    return customers


def _claim(worker_id: str) -> ClaimedBuild | None:
    return QueueClient(savepoint=False).next_build(worker_id)


@demo_loader("builds")
def load(*, rng, scale) -> str:
    if scale != "demo":
        return "nothing for this scale"
    if Build.objects.filter(source=SOURCE).exists():
        return "demo builds already loaded"
    customers = _usable_customers() or _create_customers()
    builds = []
    for index in range(16):
        customer = customers[index % len(customers)]
        manifest = {**MANIFESTS[index % len(MANIFESTS)], "revision": index}
        try:
            builds.append(
                services.build_enqueue(customer=customer, manifest=manifest, priority=rng.randint(1, 8), source=SOURCE)
            )
        except (services.LicenseUnusable, services.QuotaExceeded):
            continue
    outcomes = ["succeeded"] * 5 + ["failed", "running", "running"]
    done = []
    for number, outcome in enumerate(outcomes):
        worker_id = f"demo-worker-{number % 2}/{number}"
        claimed = _claim(worker_id)
        if claimed is None:
            break
        services.build_update_progress(build=claimed.id, worker_id=worker_id, progress=40, stage="install packages")
        if outcome == "running":
            continue
        if outcome == "failed":
            services.build_complete(
                build=claimed.id, worker_id=worker_id, succeeded=False, error="apt-get: unable to locate package"
            )
            continue
        digest = "sha256:" + hashlib.sha256(f"{claimed.manifest_hash}:{claimed.id}".encode()).hexdigest()
        if "sbom" in claimed.entitled_outputs:  # only builds entitled to an SBOM get one
            services.build_artifact_attach(
                build=claimed.id,
                worker_id=worker_id,
                kind="sbom",
                uri=f"{image_for(claimed).rsplit(':', 1)[0]}@{digest}.sbom.spdx.json",
                media_type="application/spdx+json",
                size_bytes=rng.randint(2_000, 40_000),
                digest="sha256:" + hashlib.sha256(digest.encode()).hexdigest(),
            )
        services.build_complete(
            build=claimed.id,
            worker_id=worker_id,
            succeeded=True,
            image_reference=image_for(claimed),
            image_digest=digest,
        )
        done.append(claimed)
    queued = [b for b in builds if Build.objects.get(pk=b.pk).status == Build.Status.QUEUED]
    if queued:
        services.build_cancel(build=queued[-1], reason="demo: no longer needed")
    if done:  # the same manifest again: served from the cache
        again = Build.objects.get(pk=done[0].id)
        services.build_enqueue(customer=again.customer, manifest=again.manifest, priority=5, source=SOURCE)
    counts = {}
    for status in Build.objects.filter(source=SOURCE).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return (
        f"{sum(counts.values())} builds across {len(customers)} customers ("
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + ")"
    )
