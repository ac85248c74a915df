"""record_cache_access and register_build_in_cache: the tier rules, refreshing, and bad input."""

import datetime as dt
import itertools
import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from builds.cache.services import (
    HASH_NOT_HEX,
    NEGATIVE_SIZE,
    NO_IMAGE,
    NOT_CACHEABLE,
    CacheError,
    cache_access_record,
    cache_build_register,
    cache_entry_register,
    manifest_hash,
)
from builds.models import Build, BuildAccessLog, BuildCacheEntry
from licensing.tiers import TIERS
from tests.builds.cache_factories import cached, lookup, register, sha, succeeded_build
from tests.conftest import raises_db_error
from tests.licensing.factories import CustomerFactory, LicenseFactory, RegistryCredentialFactory

ALL_TIERS = list(TIERS)


@pytest.mark.django_db
def test_sql_tier_rules_agree_with_licensing_tiers():
    """cache_tier_reads_shared / cache_tier_publishes_shared say what licensing/tiers.py says, for every tier."""
    with connection.cursor() as cursor:
        for name, tier in TIERS.items():
            cursor.execute("SELECT cache_tier_reads_shared(%s), cache_tier_publishes_shared(%s)", [name, name])
            assert cursor.fetchone() == (tier.reads_shared_cache, tier.publishes_shared_cache)


@pytest.mark.django_db
@pytest.mark.parametrize("publisher_opts_out", [False, True], ids=["publishes", "opted-out"])
@pytest.mark.parametrize(("owner_tier", "reader_tier"), list(itertools.product(ALL_TIERS, ALL_TIERS)))
def test_tier_matrix(owner_tier, reader_tier, publisher_opts_out):
    """Another tenant's entry is served only when it is shared (publishing tier, no opt-out) and the reader's
    tier reads shared entries; the owner is always served its own entry."""
    owner = LicenseFactory(tier=owner_tier, customer__publishes_to_shared_cache=not publisher_opts_out)
    reader = LicenseFactory(tier=reader_tier)
    entry = cached(owner)
    shared = TIERS[owner_tier].publishes_shared_cache and not publisher_opts_out
    assert entry.visibility == ("shared" if shared else "private")

    served = lookup(entry.manifest_hash, reader.customer_id)
    if shared and TIERS[reader_tier].reads_shared_cache:
        assert served == entry
    else:
        assert served is None
    assert lookup(entry.manifest_hash, owner.customer_id) == entry


@pytest.mark.django_db
def test_a_manifest_with_a_private_registry_credential_stays_private():
    """An enterprise build whose manifest uses a registry credential is registered private, not shared."""
    owner = LicenseFactory(tier="enterprise")
    credential = RegistryCredentialFactory(customer=owner.customer)
    entry = cached(owner, manifest={"base": {"image": "r.example/b", "registry_credential": str(credential.pk)}})
    assert entry.visibility == "private"
    assert lookup(entry.manifest_hash, LicenseFactory(tier="asp").customer_id) is None


@pytest.mark.django_db
def test_own_entry_is_preferred_over_a_shared_one():
    """A customer with its own private entry gets it, not another tenant's shared entry of the same hash."""
    manifest = {"base": "debian:12", "steps": ["make"]}
    shared = cached(LicenseFactory(tier="enterprise"), manifest=manifest)
    reader = LicenseFactory(tier="pro")
    assert lookup(shared.manifest_hash, reader.customer_id) == shared
    own = cached(reader, manifest=manifest)
    assert own.visibility == "private"
    assert lookup(shared.manifest_hash, reader.customer_id) == own


@pytest.mark.django_db
def test_expired_deleted_and_unlicensed_cases_miss():
    """Expired or soft-deleted entries are never served; without a usable license only own entries are."""
    owner = LicenseFactory(tier="asp")
    entry = cached(owner)
    reader = LicenseFactory(tier="pro", status="suspended")
    assert lookup(entry.manifest_hash, reader.customer_id) is None
    lapsed_trial = LicenseFactory(
        tier="enterprise",
        is_trial=True,
        starts_at=timezone.now() - dt.timedelta(days=30),
        expires_at=timezone.now() - dt.timedelta(days=1),
    )
    assert lookup(entry.manifest_hash, lapsed_trial.customer_id) is None
    BuildCacheEntry.objects.filter(pk=entry.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert lookup(entry.manifest_hash, owner.customer_id) is None
    BuildCacheEntry.objects.filter(pk=entry.pk).update(expires_at=None, deleted_at=timezone.now())
    assert lookup(entry.manifest_hash, owner.customer_id) is None


@pytest.mark.django_db
def test_access_is_logged_as_hit_or_miss_with_latency():
    """Each lookup appends one access-log row: hit with the entry id, or miss without one; latency recorded."""
    entry = cached(LicenseFactory(tier="core"))
    other = CustomerFactory()
    assert cache_access_record(manifest_hash=entry.manifest_hash, customer_id=entry.owner_id) == entry
    assert cache_access_record(manifest_hash=entry.manifest_hash, customer_id=other.pk) is None
    rows = list(BuildAccessLog.objects.order_by("id").values("customer_id", "cache_entry_id", "hit", "latency_us"))
    assert [(r["customer_id"], r["cache_entry_id"], r["hit"]) for r in rows] == [
        (entry.owner_id, entry.pk, True),
        (other.pk, None, False),
    ]
    assert all(r["latency_us"] is not None and r["latency_us"] >= 0 for r in rows)


@pytest.mark.django_db
@pytest.mark.parametrize("bad_hash", ["abc", "G" * 64, "A" * 64, "a" * 65, ""])
def test_a_hash_that_is_not_64_hex_is_refused_and_nothing_logged(bad_hash):
    """record_cache_access raises a P0 error for a malformed hash and logs nothing."""
    customer = CustomerFactory()
    with raises_db_error("64 lower-case hex") as info, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM record_cache_access(%s, %s)", [bad_hash, customer.pk])
    assert info.value.__cause__.sqlstate.startswith("P0")
    with pytest.raises(CacheError, match=HASH_NOT_HEX):
        cache_access_record(manifest_hash=bad_hash, customer_id=customer.pk)
    assert not BuildAccessLog.objects.exists()


@pytest.mark.django_db
def test_an_unknown_customer_is_refused():
    """record_cache_access and register_cache_entry raise 'does not exist' for an unknown customer."""
    unknown = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(CacheError, match=f"customer {unknown} does not exist"):
        cache_access_record(manifest_hash=sha("x"), customer_id=unknown)
    with pytest.raises(CacheError, match="does not exist"):
        cache_entry_register(
            manifest_hash=sha("x"),
            owner_id=unknown,
            visibility="private",
            image_reference="r/x:1",
            image_digest="sha256:" + sha("d"),
            architectures=[],
            size_bytes=1,
            content_sha256=sha("c"),
        )
    assert not BuildAccessLog.objects.exists() and not BuildCacheEntry.objects.exists()


@pytest.mark.django_db
def test_a_negative_size_is_refused():
    """register_cache_entry raises a clear error for a negative size and creates nothing."""
    with pytest.raises(CacheError, match=NEGATIVE_SIZE):
        cache_entry_register(
            manifest_hash=sha("x"),
            owner_id=CustomerFactory().pk,
            visibility="private",
            image_reference="r/x:1",
            image_digest="sha256:" + sha("d"),
            architectures=[],
            size_bytes=-1,
            content_sha256=sha("c"),
        )
    assert not BuildCacheEntry.objects.exists()


@pytest.mark.django_db
def test_register_records_architectures_size_duration_and_content_digest():
    """The entry holds the manifest's canonical architectures, the image size, the build duration and a digest."""
    build = succeeded_build(
        LicenseFactory(tier="pro"),
        manifest={"base": "alpine", "architectures": ["ARM64", "amd64", "amd64"]},
        duration=dt.timedelta(seconds=90),
        image_size=12345,
    )
    entry = register(build)
    assert entry.manifest_hash == build.manifest_hash == manifest_hash(build.manifest)
    assert (entry.owner_id, entry.source_build_id, entry.visibility) == (build.customer_id, build.pk, "private")
    assert (entry.image_reference, entry.image_digest) == (build.image_reference, build.image_digest)
    assert entry.architectures == ["amd64", "arm64"]
    assert entry.size_bytes == 12345
    assert entry.build_duration_ms == 90_000
    assert len(entry.content_sha256) == 64 and entry.hit_count == 0


@pytest.mark.django_db
def test_registering_again_refreshes_the_one_entry():
    """A second build of the same manifest by the same owner refreshes the entry instead of adding one."""
    license = LicenseFactory(tier="core")
    first = succeeded_build(license, manifest={"base": "alpine"})
    entry_id = cache_build_register(build_id=first.pk)
    assert cache_build_register(build_id=first.pk) == entry_id  # idempotent
    second = succeeded_build(license, manifest={"base": "alpine"})
    assert cache_build_register(build_id=second.pk) == entry_id
    entry = BuildCacheEntry.objects.get()
    assert (entry.image_reference, entry.source_build_id) == (second.image_reference, second.pk)


@pytest.mark.django_db
def test_a_change_of_visibility_retires_the_other_entry():
    """When an owner opts out of publishing, the next registration makes a private entry and retires the shared."""
    license = LicenseFactory(tier="enterprise")
    shared = cached(license, manifest={"base": "alpine"})
    assert shared.visibility == "shared"
    license.customer.publishes_to_shared_cache = False
    license.customer.save()
    private = cached(license, manifest={"base": "alpine"})
    assert private.visibility == "private"
    assert list(BuildCacheEntry.objects.filter(deleted_at__isnull=True)) == [private]


@pytest.mark.django_db
def test_register_refuses_unknown_failed_or_imageless_builds():
    """register_build_in_cache raises for an unknown build, a failed build, or one without an image."""
    with pytest.raises(CacheError, match="does not exist"):
        cache_build_register(build_id="00000000-0000-4000-8000-000000000000")
    failed = succeeded_build(status=Build.Status.FAILED)
    with pytest.raises(CacheError, match=NOT_CACHEABLE):
        cache_build_register(build_id=failed.pk)
    imageless = succeeded_build(image_size=None)
    Build.objects.filter(pk=imageless.pk).update(image_digest=None)
    with pytest.raises(CacheError, match=NO_IMAGE):
        cache_build_register(build_id=imageless.pk)
    assert not BuildCacheEntry.objects.exists()


@pytest.mark.django_db
def test_a_build_served_from_the_cache_returns_its_entry():
    """Registering a cache-hit build creates nothing and returns the entry it was served from."""
    entry = cached(LicenseFactory(tier="pro"))
    hit = succeeded_build(LicenseFactory(tier="pro"), cache_hit=True, cache_entry=entry)
    assert cache_build_register(build_id=hit.pk) == entry.pk
    assert BuildCacheEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_registration_of_one_hash_yields_one_entry():
    """Two workers registering builds of one manifest for one owner at the same moment make exactly one entry."""
    license = LicenseFactory(tier="enterprise")
    builds = [succeeded_build(license, manifest={"base": "alpine", "v": 1}) for _ in range(2)]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def work(build):
        try:
            barrier.wait()
            results.append(cache_build_register(build_id=build.pk))
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(build,)) for build in builds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert BuildCacheEntry.objects.filter(deleted_at__isnull=True).count() == 1
