"""Demo data for the build cache: entries registered from succeeded builds of the demo customers (private and
shared, by their tiers), and lookups of them by every customer (own hits, shared hits, misses), so the cache admin
and ``cache_statistics`` have something to show. Idempotent: its builds carry source "demo-cache", and once any
exist nothing more is added. Uses the customers with a usable license; only when none exist creates its own."""

import datetime as dt
import hashlib
import uuid

from django.utils import timezone

from builds.cache.client import CacheClient
from builds.cache.services import manifest_hash
from builds.models import Build, BuildArtifact, BuildCacheEntry
from honua.registry import demo_loader
from licensing.models import Customer, License, RegistryCredential
from licensing.services import credential_add, customer_create, license_issue

SOURCE = "demo-cache"
PRIVATE_CREDENTIAL = "<the owner's demo registry credential>"  # replaced by a credential id of the owner
MANIFESTS = [
    {"base": "python:3.12-slim", "packages": ["django", "psycopg"], "architectures": ["amd64", "arm64"]},
    {"base": "node:22-alpine", "packages": ["next"], "architectures": ["amd64"]},
    {"base": "golang:1.23", "packages": ["chi"], "architectures": ["amd64", "arm64"]},
    {"base": "debian:12-slim", "packages": ["ffmpeg"], "architectures": ["amd64"]},
    {
        "base": {"image": "registry.internal.example/base:7", "registry_credential": PRIVATE_CREDENTIAL},
        "packages": ["company-sdk"],
        "architectures": ["amd64"],
    },
    {"base": "eclipse-temurin:21-jre", "packages": ["quarkus"], "architectures": ["arm64"]},
]


def _customers() -> list[Customer]:
    licensed = License.objects.filter(status=License.Status.ACTIVE, deleted_at__isnull=True).values("customer")
    customers = list(Customer.objects.filter(pk__in=licensed, deleted_at__isnull=True).order_by("name"))
    if customers:
        return customers
    for name, tier in (("Cache Demo Core", "core"), ("Cache Demo Pro", "pro"), ("Cache Demo Enterprise", "enterprise")):
        customer = customer_create(name=name, contact_email=f"ops@{tier}.example")
        license_issue(customer=customer, tier=tier)
        customers.append(customer)
    return customers


def _register(customer: Customer, manifest: dict, *, rng, age: dt.timedelta) -> uuid.UUID:
    license = License.objects.filter(customer=customer, status=License.Status.ACTIVE).first()
    finished = timezone.now() - age
    digest = hashlib.sha256(f"{customer.pk}:{manifest}".encode()).hexdigest()
    build = Build.objects.create(
        customer=customer,
        license=license,
        manifest=manifest,
        manifest_hash=manifest_hash(manifest),
        status=Build.Status.SUCCEEDED,
        worker_id="demo-worker-cache",
        started_at=finished - dt.timedelta(seconds=rng.randint(90, 1500)),
        finished_at=finished,
        progress=100,
        image_reference=f"registry.example/{customer.pk.hex[:8]}/app:{digest[:12]}",
        image_digest=f"sha256:{digest}",
        source=SOURCE,
    )
    BuildArtifact.objects.create(
        build=build,
        kind="image",
        uri=f"oci://{build.image_reference}",
        media_type="application/vnd.oci.image.manifest.v1+json",
        size_bytes=rng.randint(30, 900) * 1024 * 1024,
        sha256=hashlib.sha256(digest.encode()).hexdigest(),
    )
    entry_id = CacheClient().register_build_in_cache(build.pk)
    BuildCacheEntry.objects.filter(pk=entry_id).update(created_at=finished)
    return entry_id


def _with_own_credential(owner: Customer, manifest: dict) -> dict:
    """The manifest with its credential placeholder replaced by a credential of ``owner`` (a manifest may only name
    its own customer's credentials: the manifest_credentials_owned trigger)."""
    base = manifest.get("base")
    if not (isinstance(base, dict) and base.get("registry_credential") == PRIVATE_CREDENTIAL):
        return manifest
    credential = RegistryCredential.objects.filter(customer=owner, status="active", deleted_at=None).first()
    if credential is None:
        credential = credential_add(
            customer=owner,
            registry_type="generic",
            registry_url="https://registry.internal.example",
            username="demo-cache",
            secret=f"demo-{uuid.uuid4().hex}",
        )
    return {**manifest, "base": {**base, "registry_credential": str(credential.pk)}}


@demo_loader("builds_cache")
def load(*, rng, scale) -> str:
    if scale != "demo":
        return "nothing for this scale"
    if Build.objects.filter(source=SOURCE).exists():
        return "demo cache already loaded"
    customers = _customers()
    hashes = []
    for index, manifest in enumerate(MANIFESTS):
        owner = customers[index % len(customers)]
        manifest = _with_own_credential(owner, manifest)
        _register(owner, manifest, rng=rng, age=dt.timedelta(days=60 if index == len(MANIFESTS) - 1 else index + 1))
        hashes.append(manifest_hash(manifest))
    lookups = hits = 0
    client = CacheClient()
    for customer in customers:
        for digest in [*hashes, hashlib.sha256(f"never built {customer.pk}".encode()).hexdigest()]:
            for _ in range(rng.randint(1, 4)):
                hits += client.record_cache_access(digest, customer.pk) is not None
                lookups += 1
    client.fold_cache_hit_counters()
    shared = BuildCacheEntry.objects.filter(source_build__source=SOURCE, visibility="shared").count()
    return f"{len(MANIFESTS)} cache entries ({shared} shared), {lookups} lookups ({hits} hits)"
