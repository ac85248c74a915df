"""License tiers and their defaults (DESIGN.md). A license's own override of a limit wins over its tier's."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Tier:
    name: str
    monthly_build_quota: int
    max_concurrent_builds: int
    max_registries: int | None  # None: unlimited
    features: tuple[str, ...]
    reads_shared_cache: bool
    publishes_shared_cache: bool
    # The tier's share of the build farm when tenants compete (builds/sql: the fair-share claim); relative only.
    scheduling_weight: int = 1


CORE = Tier("core", 50, 1, 1, (), reads_shared_cache=False, publishes_shared_cache=False, scheduling_weight=1)
PRO = Tier("pro", 500, 4, 5, ("sbom",), reads_shared_cache=True, publishes_shared_cache=False, scheduling_weight=2)
ENTERPRISE = Tier(
    "enterprise",
    5_000,
    16,
    None,
    ("sbom", "signing", "priority_boost"),
    reads_shared_cache=True,
    publishes_shared_cache=True,
    scheduling_weight=4,
)
ASP = Tier(
    "asp",
    20_000,
    32,
    None,
    ("sbom", "signing", "priority_boost", "sub_customers"),
    reads_shared_cache=True,
    publishes_shared_cache=True,
    scheduling_weight=6,
)

TIERS: dict[str, Tier] = {tier.name: tier for tier in (CORE, PRO, ENTERPRISE, ASP)}
FEATURES = ("sbom", "signing", "priority_boost", "sub_customers")
