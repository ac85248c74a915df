"""Hit counters (update_cache_stats), get_cache_hit_rate and the cache_statistics view, against hand counts."""

import datetime as dt
import functools
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from builds.cache.selectors import cache_entries_with_usage, cache_hit_rate, cache_statistics
from builds.cache.services import (
    CacheError,
    cache_access_record,
    cache_hit_counters_fold,
)
from builds.models import BuildAccessLog, BuildCacheEntry, BuildCacheHitCounter
from tests.builds.cache_factories import cached, lookup, sha
from tests.conftest import raised, run_together
from tests.licensing.factories import CustomerFactory, LicenseFactory


def live_usage(entry):
    row = cache_entries_with_usage(BuildCacheEntry.objects.filter(pk=entry.pk)).get()
    return row.live_hit_count, row.live_last_accessed_at


@pytest.mark.django_db
def test_a_hit_is_counted_and_a_miss_is_not():
    """Each hit adds one to the entry's exact hit count and sets its last access; misses add nothing."""
    entry = cached(LicenseFactory(tier="core"))
    assert live_usage(entry) == (0, None)
    lookup(entry.manifest_hash, entry.owner_id)
    lookup(entry.manifest_hash, entry.owner_id)
    lookup(sha("other"), entry.owner_id)
    hits, last = live_usage(entry)
    assert hits == 2 and last is not None


@pytest.mark.django_db
def test_fold_moves_shards_into_the_entry_and_keeps_the_total():
    """Folding moves the shard counts into hit_count and last_accessed_at, empties the shards, keeps the total."""
    entry = cached(LicenseFactory(tier="core"))
    for _ in range(3):
        lookup(entry.manifest_hash, entry.owner_id)
    assert BuildCacheHitCounter.objects.filter(cache_entry_id=entry.pk).exists()
    assert cache_hit_counters_fold() == 1
    entry.refresh_from_db()
    assert entry.hit_count == 3 and entry.last_accessed_at is not None
    assert not BuildCacheHitCounter.objects.exists()
    lookup(entry.manifest_hash, entry.owner_id)
    assert live_usage(entry)[0] == 4
    assert cache_hit_counters_fold() == 1 and BuildCacheEntry.objects.get(pk=entry.pk).hit_count == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_hits_on_one_hot_entry_are_all_counted_while_folding():
    """8 connections x 25 hits on one entry, with folds running meanwhile, count exactly 200 hits."""
    entry = cached(LicenseFactory(tier="enterprise"))
    readers = [LicenseFactory(tier="pro").customer_id for _ in range(7)] + [entry.owner_id]

    def hit(customer_id):
        for _ in range(25):
            assert cache_access_record(manifest_hash=entry.manifest_hash, customer_id=customer_id) is not None

    def fold():
        for _ in range(10):
            cache_hit_counters_fold()

    outcomes = run_together(*(functools.partial(hit, customer_id) for customer_id in readers), fold)
    assert not raised(outcomes), outcomes
    assert live_usage(entry)[0] == 200
    cache_hit_counters_fold()
    assert BuildCacheEntry.objects.get(pk=entry.pk).hit_count == 200
    assert BuildAccessLog.objects.filter(cache_entry_id=entry.pk, hit=True).count() == 200


def _log(customer, *, hit, entry=None, days_ago=0):
    row = BuildAccessLog.objects.create(
        manifest_hash=entry.manifest_hash if entry else sha(str(days_ago)),
        customer_id=customer.pk,
        cache_entry_id=entry.pk if entry else None,
        hit=hit,
        latency_us=50,
    )
    if days_ago:
        BuildAccessLog.objects.filter(pk=row.pk).update(accessed_at=timezone.now() - dt.timedelta(days=days_ago))


@pytest.mark.django_db
def test_hit_rate_per_customer_overall_and_window():
    """get_cache_hit_rate is hits/(hits+misses) in the window, per customer or overall; 0 without lookups."""
    a, b, idle = CustomerFactory(), CustomerFactory(), CustomerFactory()
    entry = cached(LicenseFactory(customer=a, tier="core"))
    _log(a, hit=True, entry=entry)
    _log(a, hit=True, entry=entry)
    _log(a, hit=False)
    _log(b, hit=False)
    _log(a, hit=False, days_ago=40)  # outside the default 30 days
    assert round(cache_hit_rate(customer_id=a.pk), 15) == round(Decimal(2) / 3, 15)
    assert cache_hit_rate(customer_id=b.pk) == 0
    assert cache_hit_rate() == Decimal("0.5")
    assert cache_hit_rate(customer_id=a.pk, since=timezone.now() - dt.timedelta(days=60)) == Decimal("0.5")
    assert cache_hit_rate(customer_id=idle.pk) == 0


@pytest.mark.django_db
def test_hit_rate_for_an_unknown_customer_is_an_error():
    """get_cache_hit_rate raises 'does not exist' for an unknown customer."""
    with pytest.raises(CacheError, match="does not exist"):
        cache_hit_rate(customer_id="00000000-0000-4000-8000-000000000000")


@pytest.mark.django_db
def test_cache_statistics_against_hand_computed_figures():
    """cache_statistics: per-customer and overall hits, misses, rate, bytes stored and time saved add up."""
    publisher = LicenseFactory(tier="enterprise")
    reader = LicenseFactory(tier="pro")
    shared = cached(publisher, duration=dt.timedelta(minutes=10), image_size=3000)  # 600,000 ms saved per hit
    own = cached(reader, duration=dt.timedelta(seconds=30), image_size=500)  # 30,000 ms
    lookup(shared.manifest_hash, reader.customer_id)
    lookup(shared.manifest_hash, reader.customer_id)
    lookup(own.manifest_hash, reader.customer_id)
    lookup(sha("nothing"), reader.customer_id)
    lookup(shared.manifest_hash, publisher.customer_id)
    lookup(sha("nothing"), publisher.customer_id)

    rows = {row["customer_id"]: row for row in cache_statistics()}
    r, p, overall = rows[reader.customer_id], rows[publisher.customer_id], rows[None]
    assert (r["lookups"], r["hits"], r["misses"], r["hit_rate"]) == (4, 3, 1, Decimal("0.75"))
    assert (r["entries"], r["shared_entries"], r["bytes_stored"]) == (1, 0, 500)
    assert r["time_saved_ms"] == 2 * 600_000 + 30_000
    assert r["time_saved"] == dt.timedelta(milliseconds=1_230_000)
    assert (p["hits"], p["misses"], p["hit_rate"], p["entries"], p["shared_entries"], p["bytes_stored"]) == (
        1,
        1,
        Decimal("0.5"),
        1,
        1,
        3000,
    )
    assert overall["scope"] == "overall"
    assert (overall["lookups"], overall["hits"], overall["misses"]) == (6, 4, 2)
    assert round(overall["hit_rate"], 15) == round(Decimal(4) / 6, 15)
    assert (overall["bytes_stored"], overall["time_saved_ms"]) == (3500, 1_830_000)
    assert cache_statistics(customer_id=reader.customer_id) == [r]


@pytest.mark.django_db
def test_statistics_on_an_empty_cache():
    """With no entries and no lookups, the overall row is all zeros."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT lookups, hits, misses, hit_rate, bytes_stored, time_saved_ms FROM cache_statistics")
        assert cursor.fetchall() == [(0, 0, 0, 0, 0, 0)]
