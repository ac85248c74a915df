"""cache_statistics from the per-month rollup (builds.0041_cache_month_rollup): the view equals a frozen oracle
computed from the raw log and registry after lookups, folds, archive batches, month moves and changes of the
entries' durations, also with several connections at once; and the migration converts a populated rollup."""

import datetime as dt
import functools
import random

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from builds.cache.services import cache_access_record, cache_access_rollup_fold
from builds.models import BuildAccessLog, BuildCacheEntry
from tests.builds.cache_factories import cached, lookup, sha
from tests.conftest import raised, run_together
from tests.conftest import sql_rows as _sql
from tests.licensing.factories import LicenseFactory

# The view, computed from the raw log and registry as 0007_cache_stats.sql defined it (the retained log, each hit
# priced at its entry's current build_duration_ms, a deleted entry saving nothing; the live entries' storage per
# owner). Frozen here: the view's cost may move, its figures may not.
ORACLE = """
    WITH access AS (
        SELECT a.customer_id, count(*) FILTER (WHERE a.hit) AS hits, count(*) FILTER (WHERE NOT a.hit) AS misses,
               coalesce(sum(e.build_duration_ms) FILTER (WHERE a.hit), 0) AS time_saved_ms
          FROM build_access_log a
          LEFT JOIN build_cache_registry e ON e.id = a.cache_entry_id
         GROUP BY a.customer_id
    ), storage AS (
        SELECT e.owner_id AS customer_id, count(*) AS entries,
               count(*) FILTER (WHERE e.visibility = 'shared') AS shared_entries, sum(e.size_bytes) AS bytes_stored
          FROM build_cache_registry e
         WHERE e.deleted_at IS NULL
         GROUP BY e.owner_id
    ), per_customer AS (
        SELECT coalesce(a.customer_id, s.customer_id) AS customer_id, coalesce(a.hits, 0) AS hits,
               coalesce(a.misses, 0) AS misses, coalesce(a.time_saved_ms, 0) AS time_saved_ms,
               coalesce(s.entries, 0) AS entries, coalesce(s.shared_entries, 0) AS shared_entries,
               coalesce(s.bytes_stored, 0) AS bytes_stored
          FROM access a FULL JOIN storage s ON s.customer_id = a.customer_id
    ), scoped AS (
        SELECT 'customer' AS scope, p.* FROM per_customer p
        UNION ALL
        SELECT 'overall', NULL, coalesce(sum(hits), 0), coalesce(sum(misses), 0), coalesce(sum(time_saved_ms), 0),
               coalesce(sum(entries), 0), coalesce(sum(shared_entries), 0), coalesce(sum(bytes_stored), 0)
          FROM per_customer
    )
    SELECT coalesce(customer_id::text, 'overall'), scope, (hits + misses)::bigint, hits::bigint, misses::bigint,
           round(CASE WHEN hits + misses > 0 THEN hits::numeric / (hits + misses) ELSE 0 END, 12),
           entries::bigint, shared_entries::bigint, bytes_stored::bigint, time_saved_ms::bigint
      FROM scoped
"""
VIEW = """
    SELECT id, scope, lookups, hits, misses, round(hit_rate, 12), entries, shared_entries, bytes_stored, time_saved_ms
      FROM cache_statistics
"""


def view_and_oracle() -> tuple[dict, dict]:
    return ({row[0]: row[1:] for row in _sql(VIEW)}, {row[0]: row[1:] for row in _sql(ORACLE)})


def assert_view_is_the_oracle() -> None:
    view, oracle = view_and_oracle()
    assert view == oracle


def age(customer_id, days: int) -> None:
    """The customer's lookups moved ``days`` back (into another month's partition and rollup row)."""
    BuildAccessLog.objects.filter(customer_id=customer_id).update(accessed_at=timezone.now() - dt.timedelta(days=days))


@pytest.mark.django_db
def test_the_view_is_the_oracle_through_lookups_folds_moves_archives_and_changed_durations():
    """Lookups of shared and private entries and misses by several customers, folded in part, some moved months
    back and archived in batches, entries whose durations change (folded and unfolded hits alike), an entry purged
    and one soft-deleted: after each step the view equals the oracle computed from the log and registry."""
    rng = random.Random(15)
    owners = [LicenseFactory(tier="enterprise") for _ in range(2)]
    readers = [LicenseFactory(tier="pro").customer_id for _ in range(4)]
    entries = [cached(owners[i % 2], duration=dt.timedelta(seconds=3 + i), image_size=1000 * (i + 1)) for i in range(4)]

    def look(n: int) -> None:
        for _ in range(n):
            customer = rng.choice(readers + [o.customer_id for o in owners])
            manifest = rng.choice([e.manifest_hash for e in entries] + [sha(f"miss-{rng.random()}")])
            lookup(manifest, customer)

    look(30)
    assert_view_is_the_oracle()
    cache_access_rollup_fold()
    assert_view_is_the_oracle()
    look(20)  # some folded, some in the shards
    BuildCacheEntry.objects.filter(pk=entries[0].pk).update(build_duration_ms=60_000)
    assert_view_is_the_oracle()
    age(readers[0], 100)  # into an older month: the rollup's count moves with it
    assert_view_is_the_oracle()
    cache_access_rollup_fold()
    BuildCacheEntry.objects.filter(pk=entries[1].pk).update(build_duration_ms=None)
    assert_view_is_the_oracle()
    with connection.cursor() as cursor:
        cursor.execute("SELECT archive_build_access_log(90, 3)")
    assert_view_is_the_oracle()
    BuildCacheEntry.objects.filter(pk=entries[2].pk).update(deleted_at=timezone.now())  # storage only
    BuildCacheEntry.objects.filter(pk=entries[3].pk).delete()  # its hits save nothing now
    assert_view_is_the_oracle()
    look(10)
    cache_access_rollup_fold()
    assert_view_is_the_oracle()
    view, _ = view_and_oracle()
    assert view["overall"][1] == BuildAccessLog.objects.count() > 40


@pytest.mark.django_db
def test_time_saved_follows_each_entrys_current_duration_in_every_month():
    """Hits of one entry by two customers in two months, folded: a new duration reprices every one of them, a
    deleted entry's hits save nothing, and the months' rows stay one per customer and month."""
    readers = [LicenseFactory(tier="pro").customer_id for _ in range(2)]
    entry = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=10))
    for customer in readers:
        lookup(entry.manifest_hash, customer)
        lookup(entry.manifest_hash, customer)
    age(readers[0], 40)  # last month, or the month before: another month in any case
    lookup(entry.manifest_hash, readers[0])
    cache_access_rollup_fold()
    saved = "SELECT customer_id, sum(time_saved_ms) FROM build_cache_access_monthly GROUP BY 1"
    assert dict(_sql(saved)) == {readers[0]: 30_000, readers[1]: 20_000}
    BuildCacheEntry.objects.filter(pk=entry.pk).update(build_duration_ms=25_000)
    assert dict(_sql(saved)) == {readers[0]: 75_000, readers[1]: 50_000}
    assert_view_is_the_oracle()
    assert _sql("SELECT count(*) FROM build_cache_access_monthly") == [(3,)]
    BuildCacheEntry.objects.filter(pk=entry.pk).delete()
    assert dict(_sql(saved)) == {readers[0]: 0, readers[1]: 0}
    assert_view_is_the_oracle()


PER_MONTH = """
    SELECT month, customer_id, cache_entry_id, sum(hits), sum(misses) FROM build_cache_access_rollup
     GROUP BY 1, 2, 3 HAVING sum(hits) <> 0 OR sum(misses) <> 0
"""
PER_MONTH_FROM_LOG = """
    SELECT date_trunc('month', accessed_at, 'UTC'), customer_id, cache_entry_id, count(*) FILTER (WHERE hit),
           count(*) FILTER (WHERE NOT hit)
      FROM build_access_log GROUP BY 1, 2, 3
"""


@pytest.mark.django_db
def test_a_lookup_moved_to_another_month_is_counted_in_that_month():
    """The rollup counts each lookup in the UTC month of its time, also after its time moves to another month
    (folded or not), so that moving a month to the archive whole takes exactly that month's lookups out."""
    customer = LicenseFactory(tier="pro").customer_id
    entry = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=5))
    for manifest in (entry.manifest_hash, entry.manifest_hash, sha("nothing")):
        lookup(manifest, customer)
    cache_access_rollup_fold()
    lookup(entry.manifest_hash, customer)  # in a shard
    age(customer, 70)
    assert sorted(_sql(PER_MONTH), key=str) == sorted(_sql(PER_MONTH_FROM_LOG), key=str)
    this_month = _sql("SELECT date_trunc('month', now(), 'UTC')")[0][0]
    assert len(_sql(PER_MONTH)) == 2 and all(row[0] < this_month for row in _sql(PER_MONTH))
    cache_access_rollup_fold()
    assert sorted(_sql(PER_MONTH), key=str) == sorted(_sql(PER_MONTH_FROM_LOG), key=str)
    assert_view_is_the_oracle()


@pytest.mark.django_db(transaction=True)
def test_concurrent_lookups_folds_and_duration_changes_keep_the_view_exact():
    """6 connections looking up two hot entries while one folds over and over and one changes the entries'
    durations over and over (each change in its own transaction): the view equals the oracle at the end, and after
    a last fold. A fold that priced hits at a duration changed meanwhile would leave time saved off."""
    hot = [cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=2)) for _ in range(2)]
    readers = [LicenseFactory(tier="pro").customer_id for _ in range(6)]

    def look(customer_id):
        for i in range(40):
            manifest = hot[i % 2].manifest_hash if i % 5 else sha(f"miss-{i}")
            cache_access_record(manifest_hash=manifest, customer_id=customer_id)

    def fold():
        for _ in range(25):
            cache_access_rollup_fold()

    def reprice():
        for i in range(40):
            BuildCacheEntry.objects.filter(pk=hot[i % 2].pk).update(build_duration_ms=1_000 + 37 * i)

    outcomes = run_together(*(functools.partial(look, c) for c in readers), fold, reprice)
    assert not raised(outcomes), outcomes
    assert BuildAccessLog.objects.count() == 6 * 40
    assert_view_is_the_oracle()
    cache_access_rollup_fold()
    assert_view_is_the_oracle()
    assert not _sql("SELECT 1 FROM build_cache_access_rollup WHERE shard >= 0")


def _digest(sql: str) -> list[tuple]:
    return _sql(f"SELECT * FROM ({sql}) v ORDER BY 1")


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_a_populated_rollup_and_back():
    """Back at builds 0040 with lookups folded and not, over two months: migrating forward gives the same view
    (every figure), a partitioned rollup of one row per month, customer and entry, and months per customer that
    sum to it; migrating back collapses the months again with the same view."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([("operations", "0004_archive_partitions"), ("builds", "0040_cache_fold")])
    try:
        readers = [LicenseFactory(tier="pro").customer_id for _ in range(3)]
        entry = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=4))
        for customer in readers:
            for manifest in (entry.manifest_hash, entry.manifest_hash, sha("nothing")):
                _sql("SELECT id FROM record_cache_access(%s, %s)", [manifest, customer])
        _sql("SELECT fold_cache_access_rollup()")
        _sql(
            "UPDATE build_access_log SET accessed_at = accessed_at - interval '35 days' WHERE customer_id = %s",
            [readers[0]],
        )
        _sql("SELECT id FROM record_cache_access(%s, %s)", [entry.manifest_hash, readers[1]])  # in a shard
        before = _digest(VIEW)
        assert before == _digest(ORACLE)
        MigrationExecutor(connection).migrate(leaves)
        assert _digest(VIEW) == before
        assert _sql("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'build_cache_access_rollup'::regclass")
        assert _sql("SELECT count(*) FROM build_cache_access_rollup") == _sql(
            "SELECT count(DISTINCT (date_trunc('month', accessed_at, 'UTC'), customer_id, cache_entry_id))"
            " FROM build_access_log"
        )
        assert _sql("SELECT sum(hits), sum(misses) FROM build_cache_access_monthly") == _sql(
            "SELECT count(*) FILTER (WHERE hit), count(*) FILTER (WHERE NOT hit) FROM build_access_log"
        )
        executor = MigrationExecutor(connection)
        executor.migrate([("operations", "0004_archive_partitions"), ("builds", "0040_cache_fold")])
        assert _digest(VIEW) == before
        assert _sql("SELECT count(*) FROM build_cache_access_rollup") == [(6,)]  # one per (customer, entry)
    finally:
        MigrationExecutor(connection).migrate(leaves)
