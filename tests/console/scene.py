"""A month of believable activity for the dashboard (browser test and screenshots): builds in every state over
30 days, a stale running build, cache traffic, licenses near their quota or expiring, and conversations."""

import datetime as dt
import hashlib
import random
import uuid

from django.utils import timezone

from builds.models import Build, BuildAccessLog, BuildCacheEntry, BuildResult
from honua.models import MaintenanceRun
from intake.models import Conversation
from tests.licensing.factories import CustomerFactory, LicenseFactory


def _hex() -> str:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


def populate(*, seed: int = 7, days: int = 30) -> dict:
    rng = random.Random(seed)
    now = timezone.now()
    names = ["Kilauea Labs", "Mauna Data", "Pali Systems", "Lanikai Health", "Waimea Freight", "Hana Studio"]
    licenses = [
        LicenseFactory(customer=CustomerFactory(name=name), tier=tier, monthly_build_quota_override=quota)
        for name, tier, quota in zip(
            names, ["core", "pro", "pro", "enterprise", "asp", "core"], [60, 120, 300, 900, 2000, 40], strict=True
        )
    ]
    LicenseFactory(
        is_trial=True,
        tier="pro",
        expires_at=now + dt.timedelta(days=4),
        customer=CustomerFactory(name="Trial: Koa Robotics"),
    )
    LicenseFactory(
        tier="enterprise", expires_at=now + dt.timedelta(days=11), customer=CustomerFactory(name="Moana Shipping")
    )

    builds, results = [], []
    for day in range(days):
        for _ in range(rng.randint(12, 30)):
            license = rng.choice(licenses)
            created = now - dt.timedelta(days=day, minutes=rng.randint(0, 1439))
            status = rng.choices(["succeeded", "failed", "timed_out", "cancelled"], [85, 9, 3, 3])[0]
            build = Build(
                id=uuid.uuid4(),
                customer_id=license.customer_id,
                license=license,
                manifest={"n": day},
                manifest_hash=_hex(),
                status=status,
                priority=rng.randint(1, 10),
                created_at=created,
                started_at=created,
                finished_at=created + dt.timedelta(minutes=3),
                worker_id="worker-1",
            )
            builds.append(build)
            results.append(
                BuildResult(
                    build=build,
                    status=status,
                    duration_ms=rng.randint(40_000, 400_000),
                    created_at=created + dt.timedelta(minutes=3),
                )
            )
    Build.objects.bulk_create(builds)
    BuildResult.objects.bulk_create(results)

    for i in range(7):
        Build.objects.create(
            customer=licenses[i % 5].customer,
            license=licenses[i % 5],
            manifest={"q": i},
            manifest_hash=_hex(),
            priority=[10, 8, 5, 5, 5, 3, 1][i],
        )
    for i, (stage, progress, age) in enumerate(
        [
            ("pull base image", 12, 4),
            ("install packages", 57, 9),
            ("export image", 91, 2),
            ("install packages", 33, 400),
        ]
    ):
        Build.objects.create(
            customer=licenses[i].customer,
            license=licenses[i],
            manifest={"r": i},
            manifest_hash=_hex(),
            status="running",
            worker_id=f"worker-{i + 1}",
            stage=stage,
            progress=progress,
            started_at=now - dt.timedelta(minutes=10),
            heartbeat_at=now - dt.timedelta(seconds=age),
            heartbeat_timeout_seconds=120,
        )

    entries = BuildCacheEntry.objects.bulk_create(
        BuildCacheEntry(
            id=uuid.uuid4(),
            manifest_hash=_hex(),
            owner_id=lic.customer_id,
            image_reference="registry.example/app:1",
            image_digest="sha256:" + _hex(),
            content_sha256=_hex(),
            build_duration_ms=180_000,
        )
        for lic in licenses
    )
    BuildAccessLog.objects.bulk_create(
        BuildAccessLog(
            manifest_hash=_hex(),
            customer_id=licenses[0].customer_id,
            hit=hit,
            cache_entry_id=rng.choice(entries).pk if hit else None,
            accessed_at=now - dt.timedelta(days=day, minutes=rng.randint(0, 1439)),
        )
        for day in range(days)
        for hit in [rng.random() < 0.35 + day / 100 for _ in range(rng.randint(10, 25))]
    )

    Conversation.objects.bulk_create(
        Conversation(
            customer_id=rng.choice(licenses).customer_id,
            model="claude-sonnet-4",
            started_at=now - dt.timedelta(days=day, minutes=rng.randint(0, 1439)),
            prompt_tokens=rng.randint(2_000, 30_000),
            completion_tokens=rng.randint(500, 8_000),
            total_cost=round(rng.uniform(0.02, 0.60), 4),
            satisfaction_score=rng.choice([None, 3, 4, 4, 5, 5]),
        )
        for day in range(days)
        for _ in range(rng.randint(3, 12))
    )
    run_id = uuid.uuid4()
    for schedule, task, outcome, ago in [
        ("hourly", "handle_build_timeouts", "succeeded", dt.timedelta(minutes=12)),
        ("daily", "expire_licenses", "succeeded", dt.timedelta(hours=7)),
        ("weekly", "vacuum_analyze", "failed", dt.timedelta(days=2)),
    ]:
        MaintenanceRun.objects.create(
            run_id=run_id,
            schedule=schedule,
            task=task,
            outcome=outcome,
            rows=3,
            duration_ms=420,
            started_at=now - ago,
            error="canceling statement due to lock timeout" if outcome == "failed" else "",
        )
    return {"licenses": licenses}
