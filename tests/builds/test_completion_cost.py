"""A completion's cache registration (builds.0044_completion_cost): an entry created now does not call the month
rollup's pricing, a restored entry and a changed duration still do, the retirement of the other visibility's
entry probes the unique key, and cache_statistics reads the owners' storage from the owner index; the view's
figures stay those of the frozen oracle (tests/builds/test_cache_month_rollup.py)."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from builds.cache.services import cache_access_rollup_fold
from builds.models import BuildCacheEntry
from tests.builds.cache_factories import cached, lookup, sha, succeeded_build
from tests.builds.factories import BuildFactory
from tests.builds.test_cache_month_rollup import assert_view_is_the_oracle
from tests.conftest import nested_plans, plan_of
from tests.conftest import sql_rows as _rows
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

PRICING = ("build_cache_access_reprice", "build_cache_access_price")
DIGEST = "sha256:" + "d" * 64
SAVED = "SELECT customer_id, sum(time_saved_ms) FROM build_cache_access_monthly GROUP BY 1"


def _calls() -> dict:
    """Calls of the registration's and the pricing's functions counted so far (track_functions). The counts may
    include calls of this connection's earlier transactions not yet flushed to the shared statistics, so tests
    compare two readings taken in their own transaction (the backend flushes only between transactions)."""
    names = [*PRICING, "register_cache_entry", "register_build_in_cache", "cache_entry_store", "cache_content_digest"]
    return dict(_rows("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE funcname = ANY(%s)", [names]))


def _calls_since(before: dict) -> dict:
    """Calls counted since the reading ``before``, functions not called left out."""
    return {name: calls - before.get(name, 0) for name, calls in _calls().items() if calls != before.get(name, 0)}


def test_a_completion_registers_its_entry_without_pricing_it():
    """Every completion of a build called build_cache_access_price for its new entry (two scans of every month's
    rollup partition) only to find no hits under an id just made; the insert trigger's condition now says so."""
    license = LicenseFactory(tier="pro")
    BuildFactory(license=license)
    _rows("SET LOCAL track_functions = 'all'")
    before = _calls()
    [(build_id,)] = _rows("SELECT id FROM get_next_build_for_worker('cost')")
    _rows("SELECT complete_build(%s, 'cost', true, 'registry.example/cost:1', %s, NULL)", [build_id, DIGEST])
    entry = BuildCacheEntry.objects.get(source_build_id=build_id)
    assert entry.build_duration_ms is not None and entry.deleted_at is None
    # The completion registers from its own row (builds.0049): the entry's insert, not the public functions, and the
    # content hash inlined into its caller's plan (a LANGUAGE sql function left as a call parses its body every time).
    assert _calls_since(before) == {"cache_entry_store": 1}


def test_a_completions_entry_is_the_one_register_build_in_cache_makes():
    """The completion registers its image from the row it just wrote (build_cache_register, builds.0049), not
    through register_build_in_cache: the entry must hold what register_build_in_cache makes of the same build, the
    image artifacts' total size and content hash (cache_content_sha256), the manifest's architectures, the shared
    visibility of a tier that publishes, and the run's duration."""
    license = LicenseFactory(tier="enterprise")
    manifest = {"base": "alpine:3.20", "run": ["make"], "architectures": ["arm64", "amd64"]}
    BuildFactory(license=license, manifest=manifest, manifest_hash=sha("m"))
    [(build_id,)] = _rows("SELECT id FROM get_next_build_for_worker('row')")
    for uri, size, digest in (("oci://b", 7, "b"), ("oci://a", 5, "a"), ("oci://sbom", 11, "c")):
        _rows(
            "SELECT attach_build_artifact(%s, 'row', %s, %s, 'application/octet-stream', %s, %s, '{}')",
            [build_id, "sbom" if uri == "oci://sbom" else "image", uri, size, "sha256:" + digest * 64],
        )
    _rows("SELECT complete_build(%s, 'row', true, 'registry.example/row:1', %s, NULL)", [build_id, DIGEST])
    entry = BuildCacheEntry.objects.get(source_build_id=build_id, deleted_at__isnull=True)
    [(content, started, finished)] = _rows(
        "SELECT cache_content_sha256(image_reference, image_digest, id), started_at, finished_at"
        " FROM build_queue WHERE id = %s",
        [build_id],
    )
    assert (entry.manifest_hash, entry.owner_id) == (sha("m"), license.customer_id)
    assert (entry.image_reference, entry.image_digest) == ("registry.example/row:1", DIGEST)
    assert (entry.visibility, entry.size_bytes, entry.content_sha256) == ("shared", 12, content)
    assert entry.architectures == ["amd64", "arm64"]
    assert abs(entry.build_duration_ms - (finished - started).total_seconds() * 1000) <= 1  # rounded to a ms

    # register_build_in_cache on the same build finds the same live entry and changes none of it.
    [(again,)] = _rows("SELECT register_build_in_cache(%s)", [build_id])
    same = BuildCacheEntry.objects.get(pk=again)
    fields = ("visibility", "size_bytes", "content_sha256", "architectures", "build_duration_ms", "deleted_at")
    assert again == entry.id
    assert [getattr(same, f) for f in fields] == [getattr(entry, f) for f in fields]


def test_completions_register_entries_under_time_ordered_ids():
    """Each completion's registry entry takes a UUIDv7 id, later ones greater (builds.0047_cache_entry_ids): its
    inserts into the primary key and build_cache_registry_duration_idx append where the last ones went instead of
    landing on a random leaf (a full-page image in the WAL for most of them after a checkpoint)."""
    license = LicenseFactory(tier="pro")
    ids = []
    for n in range(3):
        BuildFactory(license=license)
        [(build_id,)] = _rows("SELECT id FROM get_next_build_for_worker('ids')")
        _rows("SELECT complete_build(%s, 'ids', true, %s, %s, NULL)", [build_id, f"registry.example/ids:{n}", DIGEST])
        ids.append(BuildCacheEntry.objects.get(source_build_id=build_id).id)
    assert [entry_id.version for entry_id in ids] == [7, 7, 7]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_a_changed_duration_and_a_restored_entry_are_still_priced():
    """Folded hits follow their entry's duration: a change reprices them, a deleted entry takes them out, and the
    same entry inserted again with its older created_at (a restore) brings them back; the view equals the oracle
    after each step."""
    readers = [LicenseFactory(tier="pro").customer_id for _ in range(2)]
    entry = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=10))
    for customer in readers:
        lookup(entry.manifest_hash, customer)
        lookup(entry.manifest_hash, customer)
    cache_access_rollup_fold()
    assert dict(_rows(SAVED)) == {readers[0]: 20_000, readers[1]: 20_000}
    _rows("SET LOCAL track_functions = 'all'")
    before = _calls()
    BuildCacheEntry.objects.filter(pk=entry.pk).update(build_duration_ms=15_000)
    assert dict(_rows(SAVED)) == {readers[0]: 30_000, readers[1]: 30_000}
    assert _calls_since(before)["build_cache_access_price"] == 1
    assert_view_is_the_oracle()
    # Registered in an earlier transaction, as every entry with hits was: its created_at is older than now().
    _rows("UPDATE build_cache_registry SET created_at = now() - interval '1 day' WHERE id = %s", [entry.pk])
    _rows("CREATE TEMP TABLE restored ON COMMIT DROP AS SELECT * FROM build_cache_registry WHERE id = %s", [entry.pk])
    BuildCacheEntry.objects.filter(pk=entry.pk).delete()
    assert dict(_rows(SAVED)) == {readers[0]: 0, readers[1]: 0}
    assert_view_is_the_oracle()
    _rows("INSERT INTO build_cache_registry SELECT * FROM restored")
    assert dict(_rows(SAVED)) == {readers[0]: 30_000, readers[1]: 30_000}
    assert _calls_since(before)["build_cache_access_price"] == 3  # the change, the delete, the restore
    assert_view_is_the_oracle()


def test_retiring_the_other_visibility_probes_the_hash():
    """The retirement of an owner's entry of the other visibility probes the unique key by the manifest hash, not
    the owner's entries (31 buffers at the benchmark's size and growing with them, as one plan of the old statement
    did). Asserted with statistics on the registry: without them every index is estimated at one row and the
    planner's pick among them is arbitrary (a CI run saw the owner index chosen for this statement too)."""
    license = LicenseFactory(tier="enterprise")
    owners = [license.customer_id] + [LicenseFactory(tier="pro").customer_id for _ in range(19)]
    _rows(  # a registry of 4,000 live entries over 20 owners, as the benchmark's is after a few thousand builds
        """
        INSERT INTO build_cache_registry (manifest_hash, owner_id, visibility, image_reference, image_digest,
                                          architectures, size_bytes, content_sha256, build_duration_ms, hit_count)
        SELECT encode(sha256(convert_to('entry ' || i, 'UTF8')), 'hex'), (%s::uuid[])[1 + i %% 20], 'private',
               'registry.example/app:' || i, %s, '{}', 1000, repeat('0', 64), 1000, 0
          FROM generate_series(1, 4000) i
        """,
        [owners, DIGEST],
    )
    first = cached(license, manifest={"base": "alpine"})
    assert first.visibility == "shared"
    _rows("ANALYZE build_cache_registry")  # what autovacuum does after such growth; whatever earlier tests left
    license.customer.publishes_to_shared_cache = False
    license.customer.save()
    build = succeeded_build(license, manifest={"base": "alpine"})
    with nested_plans() as plans:
        [(entry_id,)] = _rows("SELECT register_build_in_cache(%s)", [build.pk])
    plan = plan_of(plans, "UPDATE build_cache_registry o")
    [condition] = [line for line in plan.splitlines() if "Index Cond:" in line]
    assert "manifest_hash" in condition and "build_cache_owner" not in plan, plan  # a probe by the hash
    assert list(BuildCacheEntry.objects.filter(manifest_hash=first.manifest_hash, deleted_at__isnull=True)) == [
        BuildCacheEntry.objects.get(pk=entry_id)
    ]
    assert BuildCacheEntry.objects.get(pk=first.pk).deleted_at is not None


def test_cache_statistics_reads_the_owners_storage_from_the_owner_index():
    """The owners' storage (entries, shared entries, bytes of live entries) can come from an index-only scan of the
    owner index, which includes visibility, size and the deletion mark: no index of its own for every registration
    to write."""
    owners = [LicenseFactory(tier="enterprise"), LicenseFactory(tier="core")]
    for i in range(6):
        cached(owners[i % 2], image_size=1000 * (i + 1), manifest={"base": "alpine", "run": [str(i)]})
    BuildCacheEntry.objects.filter(owner=owners[0].customer).order_by("created_at").first().delete()
    BuildCacheEntry.objects.filter(owner=owners[1].customer).update(deleted_at=timezone.now())
    lookup(sha("nothing"), owners[1].customer_id)
    assert_view_is_the_oracle()
    covered = _rows(
        """
        SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indexrelid = 'build_cache_owner_idx'::regclass
        """
    )[0][0]
    assert covered == ["deleted_at", "owner_id", "size_bytes", "visibility"]  # every column the storage reads
    if connection.pg_version >= 180000:
        return  # PostgreSQL 18 plans no index-only scan with enable_indexscan off: the question below needs it
    with connection.cursor() as cursor:
        for scan in ("seqscan", "bitmapscan", "indexscan"):  # a few rows: ask only whether the index covers it
            cursor.execute(f"SET LOCAL enable_{scan} = off")
        cursor.execute("EXPLAIN SELECT * FROM cache_statistics")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using build_cache_owner_idx on build_cache_registry" in plan, plan


def test_the_build_path_calls_no_sql_function_it_could_not_inline():
    """PostgreSQL inlines a LANGUAGE sql function into its caller's plan only when its body is one expression no
    more volatile than declared; any other is parsed and planned again on every call (55 us for the completion's
    content hash before builds.0049 declared it STABLE). A build's whole path through the SQL API, an agent waiting
    for a slot included, calls none: a license at its cap with work still queued (so the completion asks whether
    an agent waits), a claim, a log line, a metric, an artifact, the completion. IMMUTABLE functions are left out:
    with a custom plan PostgreSQL may evaluate them once while planning, which is not a call per row."""
    license = LicenseFactory(tier="core")
    BuildFactory(license=license)
    BuildFactory(license=license)
    _rows("SET LOCAL track_functions = 'all'")
    called = """
        SELECT s.funcname, s.calls FROM pg_stat_xact_user_functions s
        JOIN pg_proc p ON p.oid = s.funcid JOIN pg_language l ON l.oid = p.prolang
        WHERE l.lanname = 'sql' AND p.provolatile <> 'i'
    """
    before = dict(_rows(called))
    _rows("SELECT build_wait('waiting-agent')")
    [(build_id,)] = _rows("SELECT id FROM get_next_build_for_worker('inline')")
    _rows("SELECT append_build_log(%s, 'inline', 'one line')", [build_id])
    _rows("SELECT record_build_metric(%s, 'inline', 'run_seconds', 1.5, 's')", [build_id])
    _rows(
        "SELECT attach_build_artifact(%s, 'inline', 'image', 'oci://i', 'application/octet-stream', 5, %s, '{}')",
        [build_id, "sha256:" + "e" * 64],
    )
    _rows("SELECT complete_build(%s, 'inline', true, 'registry.example/inline:1', %s, NULL)", [build_id, DIGEST])
    # The versioned API's names, as agents in other languages call them.
    [(build_id,)] = _rows("SELECT id FROM claim_builds('inline-v2', 1)")
    _rows(
        "SELECT complete_build_v2(%s, 'inline-v2', 'succeeded', 'registry.example/inline:2', %s, NULL)",
        [build_id, DIGEST],
    )
    after = dict(_rows(called))
    assert {name: calls - before.get(name, 0) for name, calls in after.items() if calls != before.get(name, 0)} == {}
