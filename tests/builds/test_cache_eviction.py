"""Eviction (evict_cache_entries, manage.py cache_evict, the cache_evict task) and integrity verification."""

import datetime as dt
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.utils import timezone

from builds.cache.selectors import cache_entries_verify
from builds.cache.services import (
    EVICTION_RUNNING,
    CacheError,
    cache_entries_evict,
    cache_entries_evict_selected,
)
from builds.models import Build, BuildArtifact, BuildCacheEntry
from honua.registry import maintenance_tasks
from tests.builds.cache_factories import cached, lookup, sha
from tests.licensing.factories import LicenseFactory

DAY = dt.timedelta(days=1)


def entry_used(days_ago: float, size: int = 100, **fields) -> BuildCacheEntry:
    """A live entry created 100 days ago and last used ``days_ago`` days ago."""
    entry = cached(LicenseFactory(tier="core"), image_size=size)
    now = timezone.now()
    BuildCacheEntry.objects.filter(pk=entry.pk).update(
        created_at=now - 100 * DAY, last_accessed_at=now - days_ago * DAY, **fields
    )
    return entry


def live_ids():
    return set(BuildCacheEntry.objects.filter(deleted_at__isnull=True).values_list("pk", flat=True))


def evict(**kwargs):
    policy = {"max_age": None, "max_idle": None, "max_total_bytes": None, **kwargs}
    return cache_entries_evict(**policy)


@pytest.mark.django_db
def test_size_cap_evicts_least_recently_used_first():
    """Under a size cap, the least recently used entries go first, just until the total fits."""
    oldest, older, newer, newest = (entry_used(d) for d in (40, 30, 20, 10))
    evicted = evict(max_total_bytes=250)
    assert [e.cache_entry_id for e in evicted] == [oldest.pk, older.pk]
    assert {e.reason for e in evicted} == {"size"}
    assert live_ids() == {newer.pk, newest.pk}
    assert evict(max_total_bytes=250) == []


@pytest.mark.django_db
def test_recent_hits_count_as_use_for_lru():
    """An entry hit just now (its hit still in the counter shards) is kept over entries used less recently."""
    stale_but_hit, middle, fresh = entry_used(50), entry_used(30), entry_used(10)
    lookup(stale_but_hit.manifest_hash, stale_but_hit.owner_id)
    evicted = evict(max_total_bytes=200)
    assert [e.cache_entry_id for e in evicted] == [middle.pk]
    assert live_ids() == {stale_but_hit.pk, fresh.pk}


@pytest.mark.django_db
def test_age_idle_and_expiry_rules():
    """Entries older than max_age, idle longer than max_idle, or past expires_at are evicted with that reason."""
    idle = entry_used(45)
    recent = entry_used(1)
    expired = entry_used(1, expires_at=timezone.now() - DAY)
    evicted = {e.cache_entry_id: e.reason for e in evict(max_idle=30 * DAY)}
    assert evicted == {idle.pk: "idle", expired.pk: "expired"}
    assert {e.reason for e in evict(max_age=90 * DAY)} == {"age"}
    assert recent.pk not in live_ids()


@pytest.mark.django_db
def test_entries_in_use_by_queued_or_running_builds_are_never_evicted():
    """An entry whose hash a queued or running build has, or that one was served from, survives every rule."""
    protected_by_hash = entry_used(60)
    protected_by_reference = entry_used(70)
    unprotected = entry_used(65)
    license = LicenseFactory(tier="core")
    Build.objects.create(
        customer=license.customer,
        license=license,
        manifest={"x": 1},
        manifest_hash=protected_by_hash.manifest_hash,
        status="running",
        worker_id="w",
        started_at=timezone.now(),
    )
    Build.objects.create(
        customer=license.customer,
        license=license,
        manifest={"x": 2},
        manifest_hash=sha("queued"),
        cache_entry=protected_by_reference,
    )
    evicted = evict(max_age=DAY, max_idle=DAY, max_total_bytes=0)
    assert [e.cache_entry_id for e in evicted] == [unprotected.pk]
    assert live_ids() == {protected_by_hash.pk, protected_by_reference.pk}
    assert cache_entries_evict_selected(entry_ids=[protected_by_hash.pk]) == (0, 1)


@pytest.mark.django_db
def test_dry_run_changes_nothing():
    """A dry run returns what would go and leaves every entry live."""
    a, b = entry_used(40), entry_used(20)
    would = cache_entries_evict(max_age=None, max_idle=30 * DAY, max_total_bytes=None, dry_run=True)
    assert [e.cache_entry_id for e in would] == [a.pk]
    assert live_ids() == {a.pk, b.pk}


@pytest.mark.django_db
def test_negative_limits_are_refused():
    """A negative size cap or age raises a clear error."""
    with pytest.raises(CacheError, match="non-negative"):
        evict(max_total_bytes=-1)
    with pytest.raises(CacheError, match="must not be negative"):
        evict(max_idle=-DAY)


@pytest.mark.django_db
def test_cache_evict_command_dry_run_and_real_run():
    """`cache_evict --dry-run` lists and keeps; without it the entries are evicted and counted."""
    old, fresh = entry_used(40, size=1000), entry_used(1)
    out = StringIO()
    call_command(
        "cache_evict", "--max-idle-days=30", "--max-age-days=0", "--max-total-bytes=0", "--dry-run", stdout=out
    )
    assert f"would evict {old.pk}" in out.getvalue() and "(idle, 1000 bytes" in out.getvalue()
    assert "would evict 1 cache entries (1000 bytes)" in out.getvalue()
    assert live_ids() == {old.pk, fresh.pk}
    out = StringIO()
    call_command("cache_evict", "--max-idle-days=30", "--max-age-days=0", "--max-total-bytes=0", stdout=out)
    assert "evicted 1 cache entries (1000 bytes)" in out.getvalue()
    assert live_ids() == {fresh.pk}


@pytest.mark.django_db
def test_cache_evict_command_uses_the_settings(settings):
    """Without options, cache_evict applies BUILD_CACHE_MAX_AGE_DAYS, _MAX_IDLE_DAYS and _MAX_TOTAL_BYTES."""
    settings.BUILD_CACHE_MAX_AGE_DAYS = 0
    settings.BUILD_CACHE_MAX_IDLE_DAYS = 0
    settings.BUILD_CACHE_MAX_TOTAL_BYTES = 150
    a, b = entry_used(40), entry_used(20)
    call_command("cache_evict", stdout=StringIO())
    assert live_ids() == {b.pk} and a.pk not in live_ids()


@pytest.mark.django_db
def test_maintenance_tasks_are_registered_and_honour_dry_run(settings):
    """The cache_evict (daily) and cache_fold_hit_counters (hourly) tasks report rows and respect dry_run."""
    settings.BUILD_CACHE_MAX_IDLE_DAYS = 30
    tasks = {task.name: task for task in maintenance_tasks()}
    assert tasks["cache_evict"].schedule == "daily"
    assert tasks["cache_fold_hit_counters"].schedule == "hourly"
    old = entry_used(40)
    lookup(entry_used(1).manifest_hash, BuildCacheEntry.objects.exclude(pk=old.pk).get().owner_id)
    assert tasks["cache_fold_hit_counters"].run(dry_run=True) == 1
    assert tasks["cache_evict"].run(dry_run=True) == 1
    assert old.pk in live_ids()
    assert tasks["cache_fold_hit_counters"].run(dry_run=False) == 1
    assert tasks["cache_evict"].run(dry_run=False) == 1
    assert old.pk not in live_ids()
    assert tasks["cache_evict"].run(dry_run=False) == 0


@pytest.mark.django_db
def test_verification_reports_entries_whose_artifacts_changed():
    """verify_cache_entries is empty for intact entries and reports a changed or removed image artifact."""
    intact = cached(LicenseFactory(tier="core"))
    tampered = cached(LicenseFactory(tier="core"))
    orphaned = cached(LicenseFactory(tier="core"))
    assert cache_entries_verify() == []
    BuildArtifact.objects.filter(build_id=tampered.source_build_id).update(sha256=sha("poisoned"))
    BuildCacheEntry.objects.filter(pk=orphaned.pk).update(source_build=None)
    problems = {e.cache_entry_id: e.problem for e in cache_entries_verify()}
    assert problems == {
        tampered.pk: "content digest does not match the build's image artifacts",
        orphaned.pk: "source build is gone",
    }
    assert intact.pk not in problems


@pytest.mark.django_db
def test_cache_verify_command_exits_1_and_can_evict():
    """`cache_verify` says all is well, or lists failures and exits 1; --evict evicts them."""
    entry = cached(LicenseFactory(tier="core"))
    out = StringIO()
    call_command("cache_verify", stdout=out)
    assert "every live cache entry verified" in out.getvalue()
    BuildArtifact.objects.filter(build_id=entry.source_build_id).update(size_bytes=1)
    out = StringIO()
    with pytest.raises(CommandError, match="1 cache entries failed verification") as info:
        call_command("cache_verify", "--evict", stdout=out)
    assert info.value.returncode == 1
    assert str(entry.pk) in out.getvalue() and "evicted 1" in out.getvalue()
    assert entry.pk not in live_ids()


@pytest.mark.django_db(transaction=True)
def test_a_second_concurrent_eviction_is_refused():
    """While one eviction's transaction is open, another raises 'already running' instead of racing it."""
    entry_used(40)
    first_holds, second_done = threading.Event(), threading.Event()
    errors = []

    def first():
        try:
            with transaction.atomic():
                evict(max_idle=30 * DAY)
                first_holds.set()
                second_done.wait(10)
        finally:
            connections.close_all()

    def second():
        try:
            first_holds.wait(10)
            evict(max_idle=30 * DAY)
        except CacheError as error:
            errors.append(str(error))
        finally:
            second_done.set()
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [EVICTION_RUNNING]
    assert live_ids() == set()
