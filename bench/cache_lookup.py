"""Benchmark of the build cache lookup (issue 5): ``record_cache_access`` on a hit.

Targets:
  * with 10,000 entries and 1,000,000 access-log rows, server-side p50 < 0.5 ms and p99 < 2 ms;
  * 16 concurrent connections hitting ONE hot entry lose no hits from the counter, and their throughput is at
    least half of what 16 connections reach on 16 different entries.

Runs in its own database (``<name>_bench_cache`` on the configured server: the embedded one, or DATABASE_URL's),
created and migrated on first use and filled once; ``--fresh`` drops it first.

    .venv/bin/python bench/cache_lookup.py            # full size
    .venv/bin/python bench/cache_lookup.py --quick    # small smoke run
"""

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path

from _setup import use_database  # sets Django up, so it comes before the Django imports
from django.conf import settings
from django.db import connection, connections, transaction

P50_TARGET_MS, P99_TARGET_MS, HOT_RATIO_TARGET = 0.5, 2.0, 0.5
CONNECTIONS = 16

TIMER = """
CREATE OR REPLACE FUNCTION pg_temp.bench_lookups(p_hashes text[], p_customers uuid[])
RETURNS SETOF double precision LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
BEGIN
    FOR i IN 1 .. array_length(p_hashes, 1) LOOP
        t0 := clock_timestamp();
        PERFORM * FROM record_cache_access(p_hashes[i], p_customers[i]);
        RETURN NEXT extract(epoch FROM clock_timestamp() - t0) * 1000.0;
    END LOOP;
END;
$$;
"""


def fill(entries: int, log_rows: int) -> None:
    """Customers (pro and enterprise), ``entries`` cache entries and ``log_rows`` access-log rows, once."""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM build_cache_registry")
        if cursor.fetchone()[0] >= entries:
            return
        print(f"filling: {entries:,} entries, {log_rows:,} access-log rows ...", flush=True)
        cursor.execute(
            """
            INSERT INTO customers (name, contact_name, contact_email, publishes_to_shared_cache, metadata)
            SELECT 'bench customer ' || i, '', '', true, '{}' FROM generate_series(1, 200) i;
            INSERT INTO licenses (customer_id, tier, status, is_trial, license_key_encrypted, license_key_index,
                                  feature_overrides, notes)
            SELECT c.id, CASE WHEN row_number() OVER () % 2 = 0 THEN 'enterprise' ELSE 'pro' END, 'active', false,
                   'v1:1:bench-placeholder', encode(sha256(convert_to(c.id::text, 'UTF8')), 'hex'), '{}', ''
              FROM customers c;
            """
        )
        cursor.execute(
            """
            WITH owners AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM customers)
            INSERT INTO build_cache_registry (manifest_hash, owner_id, visibility, image_reference, image_digest,
                architectures, size_bytes, content_sha256, build_duration_ms, hit_count, created_at,
                last_accessed_at)
            SELECT encode(sha256(convert_to('manifest ' || i, 'UTF8')), 'hex'), o.id,
                   CASE WHEN i %% 2 = 0 THEN 'shared' ELSE 'private' END,
                   'registry.example/bench:' || i, 'sha256:' || encode(sha256(convert_to('img ' || i, 'UTF8')), 'hex'),
                   '{amd64,arm64}', 50000000 + i, encode(sha256(convert_to('content ' || i, 'UTF8')), 'hex'),
                   60000 + i, 0, now() - interval '60 days', NULL
              FROM generate_series(1, %s) i JOIN owners o ON o.n = i %% 200
            """,
            [entries],
        )
        # The log is history: load it without the counting trigger, then set the counts it implies.
        cursor.execute("ALTER TABLE build_access_log DISABLE TRIGGER USER")
        cursor.execute(
            """
            WITH e AS (SELECT id, manifest_hash, owner_id, row_number() OVER (ORDER BY id) AS n
                         FROM build_cache_registry)
            INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)
            SELECT e.manifest_hash, e.owner_id, CASE WHEN i %% 3 <> 0 THEN e.id END, i %% 3 <> 0, 80,
                   now() - (i %% 5184000) * interval '1 second'
              FROM generate_series(1, %s) i JOIN e ON e.n = 1 + (i::bigint * 7919) %% %s
            """,
            [log_rows, entries],
        )
        cursor.execute("ALTER TABLE build_access_log ENABLE TRIGGER USER")
        cursor.execute(
            """
            UPDATE build_cache_registry e SET hit_count = a.hits, last_accessed_at = a.last
              FROM (SELECT cache_entry_id, count(*) AS hits, max(accessed_at) AS last
                      FROM build_access_log WHERE hit GROUP BY cache_entry_id) a
             WHERE e.id = a.cache_entry_id
            """
        )
    with connection.cursor() as cursor:
        for table in ("customers", "licenses", "build_cache_registry", "build_access_log"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)


def sample_hits(count: int, *, cross_tenant: bool = False) -> list[tuple[str, str]]:
    """(hash, customer) pairs that hit: the owner's own entries, or shared entries read by another customer."""
    with connection.cursor() as cursor:
        if cross_tenant:
            cursor.execute(
                "SELECT e.manifest_hash, r.id::text FROM build_cache_registry e"
                " JOIN LATERAL (SELECT c.id FROM customers c WHERE c.id <> e.owner_id"
                "               ORDER BY c.id LIMIT 1 OFFSET (abs(hashtext(e.id::text)) %% 150)) r ON true"
                " WHERE e.deleted_at IS NULL AND e.visibility = 'shared' ORDER BY random() LIMIT %s",
                [count],
            )
        else:
            cursor.execute(
                "SELECT manifest_hash, owner_id::text FROM build_cache_registry WHERE deleted_at IS NULL"
                " ORDER BY random() LIMIT %s",
                [count],
            )
        return cursor.fetchall()


def latency(calls: int) -> tuple[float, float, float]:
    """Server-side milliseconds per record_cache_access hit: p50, p99, max (half own entries, half shared entries
    read by another tenant, which also looks up the reader's license tier)."""
    pairs = sample_hits(min(calls, 2000) // 2) + sample_hits(min(calls, 2000) // 2, cross_tenant=True)
    random.shuffle(pairs)
    pairs = (pairs * (calls // len(pairs) + 1))[:calls]
    with connection.cursor() as cursor:
        cursor.execute(TIMER)
        cursor.execute(
            "SELECT * FROM pg_temp.bench_lookups(%s::text[], %s::uuid[])",
            [[h for h, _ in pairs], [c for _, c in pairs]],
        )
        times = sorted(row[0] for row in cursor.fetchall())
    return statistics.median(times), times[int(len(times) * 0.99) - 1], times[-1]


def live_hits(entry_hash: str, owner: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT u.hit_count FROM build_cache_registry e JOIN cache_entry_usage u ON u.cache_entry_id = e.id"
            " WHERE e.manifest_hash = %s AND e.owner_id = %s AND e.deleted_at IS NULL",
            [entry_hash, owner],
        )
        return cursor.fetchone()[0]


def hammer(targets: list[tuple[str, str]], seconds: float) -> list[int]:
    """Each of len(targets) connections calls record_cache_access on its target for ``seconds``; calls each."""
    counts = [0] * len(targets)
    barrier = threading.Barrier(len(targets))
    misses = []

    def work(index, entry_hash, owner):
        try:
            with connections["default"].cursor() as cursor:
                barrier.wait()
                deadline = time.perf_counter() + seconds
                while time.perf_counter() < deadline:
                    cursor.execute("SELECT id FROM record_cache_access(%s, %s)", [entry_hash, owner])
                    if cursor.fetchone() is None:
                        misses.append(entry_hash)
                    counts[index] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i, *t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not misses, "a lookup that must hit missed"
    return counts


NAIVE_BODY = """
BEGIN
    UPDATE build_cache_registry SET hit_count = hit_count + 1, last_accessed_at = NEW.accessed_at
     WHERE id = NEW.cache_entry_id;
    RETURN NULL;
END;
"""


def compare_naive(spread, hot, seconds: float) -> tuple[float, float]:
    """Throughput (spread, hot) with the counting trigger swapped, for the run only, for a per-hit row update."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.oid::regprocedure::text, p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
            " WHERE t.tgrelid = 'build_access_log'::regclass AND t.tgname LIKE 'pgtrigger_update_cache_stats%%'"
        )
        function, original = cursor.fetchone()
        replace = "CREATE OR REPLACE FUNCTION {} RETURNS trigger LANGUAGE plpgsql AS $body${}$body$"
        cursor.execute(replace.format(function, NAIVE_BODY))
    try:
        spread_rate = sum(hammer(spread, seconds)) / seconds
        hot_rate = sum(hammer([hot] * CONNECTIONS, seconds)) / seconds
    finally:
        with connection.cursor() as cursor:
            cursor.execute(replace.format(function, original))
    return spread_rate, hot_rate


def _previous_lookup_sql() -> str:
    """builds/sql/0003_cache.sql's record_cache_access (before families), as pg_temp.record_cache_access_0003."""
    source = (Path(__file__).resolve().parent.parent / "builds" / "sql" / "0003_cache.sql").read_text()
    start = source.index("CREATE OR REPLACE FUNCTION record_cache_access(")
    body = source[start : source.index("$$;", start) + 3]
    return body.replace("FUNCTION record_cache_access(", "FUNCTION pg_temp.record_cache_access_0003(", 1)


def compare_previous(calls: int, rounds: int = 6) -> dict[tuple[str, str], list[float]]:
    """Server-side milliseconds of the current record_cache_access and 0003_cache.sql's, on the same hits (own and
    cross-tenant) and misses (an unknown hash, by an entry's owner), in interleaved rounds (order alternating), so
    a shared machine's noise falls on both alike."""
    half = max(min(calls, 2000) // 4, 1)
    hits = sample_hits(half) + sample_hits(half, cross_tenant=True)
    misses = [(f"{random.getrandbits(256):064x}", owner) for _, owner in sample_hits(2 * half)]
    timer = (
        TIMER.replace("bench_lookups", "bench_lookups_with")
        .replace(
            "PERFORM * FROM record_cache_access(p_hashes[i], p_customers[i]);",
            "IF p_previous THEN PERFORM * FROM pg_temp.record_cache_access_0003(p_hashes[i], p_customers[i]);"
            " ELSE PERFORM * FROM record_cache_access(p_hashes[i], p_customers[i]); END IF;",
        )
        .replace("(p_hashes text[], p_customers uuid[])", "(p_previous boolean, p_hashes text[], p_customers uuid[])")
    )
    times: dict[tuple[str, str], list[float]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_previous_lookup_sql())
        cursor.execute(timer)
        for round_ in range(rounds):
            for kind, pairs in (("hit", hits), ("miss", misses)):
                for previous in (True, False) if round_ % 2 else (False, True):
                    cursor.execute(
                        "SELECT * FROM pg_temp.bench_lookups_with(%s, %s, %s::uuid[])",
                        [previous, [h for h, _ in pairs], [c for _, c in pairs]],
                    )
                    version = "0003" if previous else "current"
                    times.setdefault((kind, version), []).extend(row[0] for row in cursor.fetchall())
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="A small smoke run (fewer rows, calls and seconds).")
    parser.add_argument("--fresh", action="store_true", help="Drop and rebuild the benchmark database first.")
    parser.add_argument(
        "--compare-naive",
        action="store_true",
        help="Also measure, for comparison, counting hits by updating the entry's row (swapped in for the run).",
    )
    parser.add_argument(
        "--compare-previous",
        action="store_true",
        help="Also time record_cache_access against 0003_cache.sql's version (before families), interleaved.",
    )
    parser.add_argument("--seconds", type=float, help="How long each concurrency run lasts (default 10, quick 2).")
    args = parser.parse_args()
    entries, log_rows, calls = (500, 20_000, 500) if args.quick else (10_000, 1_000_000, 5_000)
    seconds = args.seconds or (2.0 if args.quick else 10.0)

    base_name = settings.DATABASES["default"]["NAME"]
    use_database(f"{base_name}_bench_cache{'_quick' if args.quick else ''}", fresh=args.fresh)
    fill(entries, log_rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM build_cache_registry")
        n_entries = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM build_access_log")
        n_log = cursor.fetchone()[0]
        cursor.execute("SELECT fold_cache_hit_counters()")
    print(f"data: {n_entries:,} cache entries, {n_log:,} access-log rows; server {connection.pg_version}")

    p50, p99, worst = latency(calls)
    ok50, ok99 = p50 < P50_TARGET_MS, p99 < P99_TARGET_MS
    print(f"record_cache_access hit, server-side over {calls:,} calls:")
    print(f"  p50 {p50:.3f} ms (target < {P50_TARGET_MS} ms: {'met' if ok50 else 'NOT met'})")
    print(f"  p99 {p99:.3f} ms (target < {P99_TARGET_MS} ms: {'met' if ok99 else 'NOT met'})")
    print(f"  max {worst:.3f} ms")

    spread = sample_hits(CONNECTIONS)
    spread_counts = hammer(spread, seconds)
    hot = spread[0]
    before = live_hits(*hot)
    hot_counts = hammer([hot] * CONNECTIONS, seconds)
    counted = live_hits(*hot) - before
    spread_rate, hot_rate = sum(spread_counts) / seconds, sum(hot_counts) / seconds
    ratio = hot_rate / spread_rate
    lost = sum(hot_counts) - counted
    print(f"{CONNECTIONS} connections for {seconds:g} s each:")
    print(f"  16 different entries: {spread_rate:,.0f} lookups/s")
    print(
        f"  one hot entry:        {hot_rate:,.0f} lookups/s, ratio {ratio:.2f} "
        f"(target >= {HOT_RATIO_TARGET}: {'met' if ratio >= HOT_RATIO_TARGET else 'NOT met'})"
    )
    print(
        f"  hot entry hits made {sum(hot_counts):,}, counted {counted:,}, lost {lost} "
        f"(target 0: {'met' if lost == 0 else 'NOT met'})"
    )
    if args.compare_naive:
        naive_spread, naive_hot = compare_naive(spread, hot, seconds)
        print("  for comparison, counting by updating the entry's row on every hit (not what Honua does):")
        print(f"    16 different entries: {naive_spread:,.0f} lookups/s")
        print(f"    one hot entry:        {naive_hot:,.0f} lookups/s, ratio {naive_hot / naive_spread:.2f}")
    if args.compare_previous:
        print("record_cache_access now and before families (0003_cache.sql), interleaved, server-side:")
        for (kind, version), samples in sorted(compare_previous(calls).items()):
            samples.sort()
            print(
                f"  {kind:4} {version:7}: p50 {statistics.median(samples):.3f} ms, p90 "
                f"{samples[int(0.9 * len(samples))]:.3f} ms, p99 {samples[int(0.99 * len(samples))]:.3f} ms"
                f" ({len(samples):,} calls)"
            )
    met = ok50 and ok99 and ratio >= HOT_RATIO_TARGET and lost == 0
    print("all targets met" if met else "some targets NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
