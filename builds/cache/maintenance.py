"""The build cache's maintenance tasks (registered in honua.registry; found through ``BuildsConfig.subpackages``)."""

from builds.cache.services import (
    cache_access_rollup_fold,
    cache_entries_evict,
    cache_eviction_policy,
    cache_hit_counters_fold,
)
from builds.models import BuildCacheAccessRollup, BuildCacheHitCounter
from honua.registry import maintenance_task


@maintenance_task(
    "cache_fold_hit_counters",
    schedule="hourly",
    description="Fold the sharded cache hit counters into each entry's hit_count and last access.",
)
def fold_hit_counters(*, dry_run: bool) -> int:
    if dry_run:
        return BuildCacheHitCounter.objects.values("cache_entry_id").distinct().count()
    return cache_hit_counters_fold()


@maintenance_task(
    "cache_fold_access_rollup",
    schedule="hourly",
    description="Fold the sharded cache access rollup (cache_statistics) into one row per customer and entry.",
)
def fold_access_rollup(*, dry_run: bool) -> int:
    if dry_run:
        return BuildCacheAccessRollup.objects.filter(shard__gte=0).count()
    return cache_access_rollup_fold()


@maintenance_task(
    "cache_evict",
    schedule="daily",
    description="Evict expired, old, idle and least recently used cache entries (BUILD_CACHE_* settings).",
)
def evict(*, dry_run: bool) -> int:
    return len(cache_entries_evict(**cache_eviction_policy(), dry_run=dry_run))
