-- Reverse of builds.0046_cache_statistics_per_customer: cache_statistics as builds.0041_cache_month_rollup defined
-- it (the migration's Django operations then drop the two indexes).

CREATE OR REPLACE VIEW public.cache_statistics AS
 WITH access AS (
         SELECT a.customer_id,
            sum(a.hits) AS hits,
            sum(a.misses) AS misses,
            sum(a.time_saved_ms) AS time_saved_ms
           FROM ( SELECT m.customer_id,
                    m.hits,
                    m.misses,
                    m.time_saved_ms
                   FROM build_cache_access_monthly m
                UNION ALL
                 SELECT r.customer_id,
                    r.hits,
                    r.misses,
                    r.hits * COALESCE(e.build_duration_ms, 0::bigint)
                   FROM build_cache_access_rollup r
                     LEFT JOIN build_cache_registry e ON e.id = r.cache_entry_id
                  WHERE r.shard >= 0) a
          GROUP BY a.customer_id
         HAVING (sum(a.hits) + sum(a.misses)) > 0::numeric
        ), storage AS (
         SELECT e.owner_id AS customer_id,
            count(*) AS entries,
            count(*) FILTER (WHERE e.visibility::text = 'shared'::text) AS shared_entries,
            sum(e.size_bytes) AS bytes_stored
           FROM build_cache_registry e
          WHERE e.deleted_at IS NULL
          GROUP BY e.owner_id
        ), per_customer AS (
         SELECT COALESCE(a.customer_id, s_1.customer_id) AS customer_id,
            COALESCE(a.hits, 0::numeric) AS hits,
            COALESCE(a.misses, 0::numeric) AS misses,
            COALESCE(a.time_saved_ms, 0::numeric) AS time_saved_ms,
            COALESCE(s_1.entries, 0::bigint) AS entries,
            COALESCE(s_1.shared_entries, 0::bigint) AS shared_entries,
            COALESCE(s_1.bytes_stored, 0::numeric) AS bytes_stored
           FROM access a
             FULL JOIN storage s_1 ON s_1.customer_id = a.customer_id
        ), scoped AS (
         SELECT 'customer'::text AS scope,
            p.customer_id,
            p.hits,
            p.misses,
            p.time_saved_ms,
            p.entries,
            p.shared_entries,
            p.bytes_stored
           FROM per_customer p
        UNION ALL
         SELECT 'overall'::text,
            NULL::uuid AS uuid,
            COALESCE(sum(p.hits), 0::numeric) AS "coalesce",
            COALESCE(sum(p.misses), 0::numeric) AS "coalesce",
            COALESCE(sum(p.time_saved_ms), 0::numeric) AS "coalesce",
            COALESCE(sum(p.entries), 0::numeric) AS "coalesce",
            COALESCE(sum(p.shared_entries), 0::numeric) AS "coalesce",
            COALESCE(sum(p.bytes_stored), 0::numeric) AS "coalesce"
           FROM per_customer p
        )
 SELECT s.scope,
    s.customer_id,
    c.name AS customer_name,
    (s.hits + s.misses)::bigint AS lookups,
    s.hits::bigint AS hits,
    s.misses::bigint AS misses,
        CASE
            WHEN (s.hits + s.misses) > 0::numeric THEN s.hits / (s.hits + s.misses)
            ELSE 0::numeric
        END AS hit_rate,
    s.entries::bigint AS entries,
    s.shared_entries::bigint AS shared_entries,
    s.bytes_stored::bigint AS bytes_stored,
    s.time_saved_ms::bigint AS time_saved_ms,
    make_interval(secs => (s.time_saved_ms / 1000.0)::double precision) AS time_saved,
    COALESCE(s.customer_id::text, 'overall'::text) AS id
   FROM scoped s
     LEFT JOIN customers c ON c.id = s.customer_id;
