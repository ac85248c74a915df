"""The access rollup behind cache_statistics: exact against the log under concurrent lookups, folds and archiving."""

import datetime as dt
import functools

import pytest
from django.db import connection
from django.utils import timezone

from builds.cache.services import cache_access_record, cache_access_rollup_fold
from builds.models import BuildAccessLog, BuildCacheAccessRollup, BuildCacheEntry
from tests.builds.cache_factories import cached, lookup, sha
from tests.conftest import raised, raises_db_error, run_together
from tests.licensing.factories import LicenseFactory

# The view's access figures as 0007_cache_stats.sql computed them: straight from the retained log.
FROM_LOG = """
    SELECT a.customer_id, count(*) AS lookups, count(*) FILTER (WHERE a.hit) AS hits,
           count(*) FILTER (WHERE NOT a.hit) AS misses,
           coalesce(sum(e.build_duration_ms) FILTER (WHERE a.hit), 0)::bigint AS time_saved_ms
      FROM build_access_log a
      LEFT JOIN build_cache_registry e ON e.id = a.cache_entry_id
     GROUP BY a.customer_id
"""


def _rows(sql: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {row[0]: row[1:] for row in cursor.fetchall()}


def from_view() -> dict:
    """Access figures of the customers cache_statistics shows with lookups."""
    return _rows(
        "SELECT customer_id, lookups, hits, misses, time_saved_ms FROM cache_statistics"
        " WHERE scope = 'customer' AND lookups > 0"
    )


def from_log() -> dict:
    return _rows(FROM_LOG)


def archive(days: int, batch_size: int = 1000) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT archive_build_access_log(%s, %s)", [days, batch_size])
        return cursor.fetchone()[0]


def age(customer_id, days: int) -> None:
    BuildAccessLog.objects.filter(customer_id=customer_id).update(accessed_at=timezone.now() - dt.timedelta(days=days))


@pytest.mark.django_db
def test_fold_keeps_the_figures_and_leaves_one_row_per_customer_and_entry():
    """Folding moves every session shard into shard -1 (one row per customer and entry); the view is unchanged."""
    reader = LicenseFactory(tier="pro")
    entry = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=7))
    for _ in range(3):
        lookup(entry.manifest_hash, reader.customer_id)
    lookup(sha("nothing"), reader.customer_id)
    before = from_view()
    assert before == from_log() and before[reader.customer_id] == (4, 3, 1, 21_000)
    assert cache_access_rollup_fold() == 2
    assert set(BuildCacheAccessRollup.objects.values_list("shard", flat=True)) == {-1}
    assert BuildCacheAccessRollup.objects.count() == 2
    assert from_view() == before
    assert cache_access_rollup_fold() == 0 and from_view() == before


@pytest.mark.django_db
def test_time_saved_follows_the_entrys_current_duration():
    """Time saved is hits x the entry's build duration now, as over the log, also after the hits were folded."""
    reader = LicenseFactory(tier="pro")
    entry = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=10))
    lookup(entry.manifest_hash, reader.customer_id)
    lookup(entry.manifest_hash, reader.customer_id)
    cache_access_rollup_fold()
    BuildCacheEntry.objects.filter(pk=entry.pk).update(build_duration_ms=25_000)
    assert from_view()[reader.customer_id] == (2, 2, 0, 50_000) and from_view() == from_log()


@pytest.mark.django_db
def test_archived_lookups_stop_counting_as_in_the_log():
    """archive_build_access_log removes the archived lookups from the view, exactly as from the log; a customer
    whose lookups were all archived (and who owns no entry) leaves the view, and the fold drops its empty rows."""
    gone, kept = LicenseFactory(tier="pro"), LicenseFactory(tier="pro")
    entry = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=3))
    for customer in (gone, kept):
        lookup(entry.manifest_hash, customer.customer_id)
        lookup(sha("nothing"), customer.customer_id)
    cache_access_rollup_fold()
    lookup(entry.manifest_hash, gone.customer_id)  # one still in a session shard
    age(gone.customer_id, 100)
    assert archive(90, 2) == 2 and archive(90, 2) == 1 and archive(90, 2) == 0
    view = from_view()
    assert view == from_log() and gone.customer_id not in view and view[kept.customer_id] == (2, 1, 1, 3_000)
    assert gone.customer_id not in _rows("SELECT customer_id, 1 FROM cache_statistics")
    cache_access_rollup_fold()
    assert not BuildCacheAccessRollup.objects.filter(customer_id=gone.customer_id).exists()
    assert from_view() == view


@pytest.mark.django_db
def test_a_lookups_customer_entry_and_outcome_cannot_change():
    """Updating a logged lookup's customer, entry or outcome is refused (the rollup counts it where it was)."""
    customer = LicenseFactory(tier="pro").customer_id
    lookup(sha("nothing"), customer)
    with raises_db_error("Cannot update rows"):
        BuildAccessLog.objects.update(hit=True)
    age(customer, 5)  # its time may change
    assert from_view() == from_log()


@pytest.mark.django_db(transaction=True)
def test_concurrent_lookups_folds_and_archiving_keep_the_view_exact():
    """8 connections x 30 lookups (hits on one hot entry, misses) while folds and the archive run meanwhile:
    the view equals the figures counted from the log at the end, and every lookup was logged."""
    hot = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=2))
    readers = [LicenseFactory(tier="pro").customer_id for _ in range(8)]
    for customer in readers[:4]:  # old lookups for the archive to remove while the others look up
        for _ in range(5):
            lookup(hot.manifest_hash, customer)
        age(customer, 100)

    def look(customer_id):
        for i in range(30):
            manifest = hot.manifest_hash if i % 3 else sha(f"miss-{i}")
            cache_access_record(manifest_hash=manifest, customer_id=customer_id)

    def maintain():
        for _ in range(10):
            cache_access_rollup_fold()
            archive(90, 3)

    outcomes = run_together(*(functools.partial(look, customer_id) for customer_id in readers), maintain)
    assert not raised(outcomes), outcomes
    while archive(90, 100):
        pass
    assert BuildAccessLog.objects.count() == 8 * 30
    view = from_view()
    assert view == from_log()
    assert all(view[customer] == (30, 20, 10, 40_000) for customer in readers)
    cache_access_rollup_fold()
    assert from_view() == view
