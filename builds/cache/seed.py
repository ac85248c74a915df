"""The build cache's part of the six-month seed (``operations.seed`` runs every app's steps in one transaction, by
order): which successful builds registered an entry (``seed_entries``, drawn before the builds are written, since
a later build of the same manifest is served from it), the entries themselves, and a million lookups in the access
log with the counters and rollup the cache's triggers would keep."""

from honua.registry import seed_step, seed_uid

seed_step(
    "cache entries drawn",
    order=410,
    after=["builds"],
    statements=[
        # Cache entries: the first successful build of a manifest for an owner registers it.
        f"""CREATE TEMP TABLE seed_entries ON COMMIT DROP AS
        SELECT row_number() OVER (ORDER BY finished_at, n) - 1 AS ord, * FROM (
            SELECT DISTINCT ON (b.template, b.customer_id)
                   b.n, {seed_uid("cache", "b.n")} AS id, b.id AS build_id, b.customer_id, b.template,
                   CASE WHEN b.tier IN ('enterprise', 'asp') THEN 'shared' ELSE 'private' END AS visibility,
                   b.created_at + b.wait_s * interval '1 second' + b.run_s * interval '1 second' AS finished_at,
                   round(b.run_s * 1000)::bigint AS duration_ms
            FROM seed_builds b WHERE b.status = 'succeeded'
            ORDER BY b.template, b.customer_id, b.created_at
        ) e""",
        "DELETE FROM seed_entries WHERE ord >= %(cache_entries)s",
        "CREATE UNIQUE INDEX ON seed_entries (ord)",
        "CREATE INDEX ON seed_entries (template)",
        "ANALYZE seed_entries",
    ],
)

seed_step(
    "build cache",
    order=600,
    after=["builds queued", "cache entries drawn"],
    statements=[
        """INSERT INTO build_cache_registry (id, manifest_hash, owner_id, visibility, image_reference, image_digest,
                                             architectures, size_bytes, content_sha256, source_build_id,
                                             build_duration_ms, hit_count, expires_at, created_at, updated_at,
                                             deleted_at)
        SELECT e.id, t.manifest_hash, e.customer_id, e.visibility, q.image_reference, q.image_digest,
               ARRAY(SELECT jsonb_array_elements_text(t.manifest -> 'architectures')),
               (50 + random() * 1500)::bigint * 1048576,
               encode(sha256(convert_to('content:' || e.id, 'UTF8')), 'hex'), e.build_id, e.duration_ms, 0,
               CASE WHEN mod(e.ord, 9) = 0 THEN e.finished_at + interval '120 days' END,
               e.finished_at, e.finished_at,
               CASE WHEN mod(e.ord, 31) = 0 THEN %(anchor)s::timestamptz - interval '35 days' END
        FROM seed_entries e JOIN seed_templates t ON t.tk = e.template JOIN build_queue q ON q.id = e.build_id
        ORDER BY e.ord""",
        """UPDATE build_queue q SET cache_entry_id = b.cache_entry_id
        FROM seed_builds b WHERE b.id = q.id AND b.cache_entry_id IS NOT NULL""",
    ],
)

# The log reads only the temporary tables of the customers, the templates and the entries drawn (not the entries'
# rows), and draws from its own random() sequence (setseed of its own): so a parallel load (operations.seed) runs it
# on a second connection, into its own transaction, while the first goes on with the builds.
seed_step(
    "cache access log",
    order=610,
    after=["cache entries drawn", "customers", "manifest templates"],
    statements=[
        "SELECT setseed(%(setseed_access_log)s)",
        # Two thirds hits (of an entry: popular entries more often, after it was registered), one third misses.
        """CREATE TEMP TABLE seed_access_draw ON COMMIT DROP AS
        SELECT g, random() < 0.66 AS hit, floor(%(entries)s * power(random(), 1.8))::int AS entry_ord,
               floor(%(customers)s * power(random(), 2.2))::int AS cord,
               floor(%(templates)s * power(random(), 2))::int AS template,
               random() AS u_time, random() AS u_latency
        FROM generate_series(1, %(access_log)s) g""",
        # The log, and from the rows it returns the counters the update_cache_stats trigger keeps (one pass: the log
        # is not read again). The counters are set after the statement, once its triggers (when they run) are done.
        """CREATE TEMP TABLE seed_access_hits ON COMMIT DROP AS
        WITH logged AS (
        INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)
        SELECT a.manifest_hash, a.customer_id, a.cache_entry_id, a.hit, a.latency_us, a.accessed_at FROM (
            SELECT CASE WHEN d.hit THEN et.manifest_hash ELSE t.manifest_hash END AS manifest_hash,
                   CASE WHEN d.hit AND e.visibility = 'private' THEN e.customer_id ELSE c.id END AS customer_id,
                   CASE WHEN d.hit THEN e.id END AS cache_entry_id, d.hit,
                   CASE WHEN d.hit THEN 150 + floor(d.u_latency * 1800)::int
                        ELSE 80 + floor(d.u_latency * 700)::int END AS latency_us,
                   CASE WHEN d.hit THEN e.finished_at + (%(anchor)s::timestamptz - e.finished_at) * sqrt(d.u_time)
                        ELSE %(anchor)s::timestamptz - %(span)s * (1 - sqrt(d.u_time)) * interval '1 day'
                   END AS accessed_at,
                   d.g
            FROM seed_access_draw d
            JOIN seed_entries e ON e.ord = d.entry_ord
            JOIN seed_templates et ON et.tk = e.template
            JOIN seed_templates t ON t.tk = d.template
            JOIN seed_customers c ON c.ord = d.cord
        ) a
        ORDER BY a.accessed_at, a.g
        RETURNING cache_entry_id, hit, accessed_at
        )
        SELECT cache_entry_id, count(*) AS hits, max(accessed_at) AS last_at FROM logged
        WHERE hit GROUP BY cache_entry_id""",
    ],
)

seed_step(
    "cache access counters",
    order=620,
    after=["build cache", "cache access log"],
    statements=[
        """UPDATE build_cache_registry r SET hit_count = s.hits, last_accessed_at = s.last_at,
                                             updated_at = greatest(r.updated_at, s.last_at)
        FROM seed_access_hits s
        WHERE r.id = s.cache_entry_id""",
        # The rollup the rollup_cache_access trigger keeps and its customers' months (cache_statistics), recounted
        # from the whole log whether or not the trigger ran; the lock keeps concurrent lookups out of the recount.
        "LOCK TABLE build_access_log IN SHARE ROW EXCLUSIVE MODE",
        # A database migrated only to a point before builds.0041 (the partition conversion's test seeds one) has
        # the rollup without its months: counted per (customer, entry) as then. PL/pgSQL resolves each branch only
        # when it runs.
        """DO $$ BEGIN
            IF to_regproc('public.cache_access_rollup_recount') IS NOT NULL THEN
                PERFORM cache_access_rollup_recount();
                ANALYZE build_cache_access_monthly;
            ELSE
                DELETE FROM build_cache_access_rollup;
                INSERT INTO build_cache_access_rollup (customer_id, cache_entry_id, shard, hits, misses)
                SELECT customer_id, cache_entry_id, -1, count(*) FILTER (WHERE hit), count(*) FILTER (WHERE NOT hit)
                  FROM build_access_log GROUP BY customer_id, cache_entry_id;
            END IF;
        END $$""",
        "ANALYZE build_cache_access_rollup",
    ],
)
