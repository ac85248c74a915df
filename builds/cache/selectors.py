"""Reads of the build cache for the admin, the commands and the web layer: entries with their live usage, the
integrity check, the hit rate and the ``cache_statistics`` view. The SQL calls are ``builds.cache.client``'s."""

import datetime as dt
import uuid
from decimal import Decimal

from django.db.models import F, Max, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest

from builds.cache.client import CacheClient, CorruptEntry
from builds.models import BuildCacheEntry, BuildCacheHitCounter


def cache_entries_verify() -> list[CorruptEntry]:
    """The live entries whose recorded content SHA-256 no longer matches their image and artifacts."""
    return CacheClient().verify_cache_entries()


def cache_hit_rate(*, customer_id: uuid.UUID | None = None, since: dt.datetime | None = None) -> Decimal:
    """Hits / (hits + misses) of lookups since ``since`` (default: 30 days), of one customer or all; 0 if none."""
    return CacheClient().get_cache_hit_rate(customer_id, since)


def cache_statistics(*, customer_id: uuid.UUID | None = None) -> list[dict]:
    """Rows of the ``cache_statistics`` view: the overall row first, then one per customer (or just that one)."""
    return CacheClient().cache_statistics(customer_id)


def cache_entries_with_usage(queryset: QuerySet | None = None) -> QuerySet:
    """Cache entries annotated with their exact ``live_hit_count``, ``live_last_accessed_at`` (folded counts plus
    the unfolded shards) and ``live_last_used_at`` (the eviction order), in one query."""
    shards = BuildCacheHitCounter.objects.filter(cache_entry_id=OuterRef("pk")).values("cache_entry_id")
    unfolded_hits = Subquery(shards.annotate(total=Sum("hits")).values("total"))
    unfolded_last = Subquery(shards.annotate(last=Max("last_accessed_at")).values("last"))
    queryset = queryset if queryset is not None else BuildCacheEntry.objects.all()
    return queryset.annotate(
        live_hit_count=F("hit_count") + Coalesce(unfolded_hits, Value(0)),
        live_last_accessed_at=Greatest("last_accessed_at", unfolded_last),
        live_last_used_at=Greatest("created_at", "last_accessed_at", unfolded_last),
    )
