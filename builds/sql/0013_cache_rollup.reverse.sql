-- Back to 0007_cache_stats.sql's cache_statistics over the whole access log; the rollup table and its triggers
-- go with the migration's model operations.
DROP FUNCTION IF EXISTS fold_cache_access_rollup();

CREATE OR REPLACE VIEW cache_statistics AS
WITH access AS (
    SELECT a.customer_id,
           count(*) FILTER (WHERE a.hit) AS hits,
           count(*) FILTER (WHERE NOT a.hit) AS misses,
           coalesce(sum(e.build_duration_ms) FILTER (WHERE a.hit), 0) AS time_saved_ms
      FROM build_access_log a
      LEFT JOIN build_cache_registry e ON e.id = a.cache_entry_id
     GROUP BY a.customer_id
), storage AS (
    SELECT e.owner_id AS customer_id,
           count(*) AS entries,
           count(*) FILTER (WHERE e.visibility = 'shared') AS shared_entries,
           sum(e.size_bytes) AS bytes_stored
      FROM build_cache_registry e
     WHERE e.deleted_at IS NULL
     GROUP BY e.owner_id
), per_customer AS (
    SELECT coalesce(a.customer_id, s.customer_id) AS customer_id,
           coalesce(a.hits, 0) AS hits,
           coalesce(a.misses, 0) AS misses,
           coalesce(a.time_saved_ms, 0) AS time_saved_ms,
           coalesce(s.entries, 0) AS entries,
           coalesce(s.shared_entries, 0) AS shared_entries,
           coalesce(s.bytes_stored, 0) AS bytes_stored
      FROM access a
      FULL JOIN storage s ON s.customer_id = a.customer_id
), scoped AS (
    SELECT 'customer'::text AS scope, p.customer_id, p.hits, p.misses, p.time_saved_ms, p.entries,
           p.shared_entries, p.bytes_stored
      FROM per_customer p
    UNION ALL
    SELECT 'overall', NULL, coalesce(sum(p.hits), 0), coalesce(sum(p.misses), 0), coalesce(sum(p.time_saved_ms), 0),
           coalesce(sum(p.entries), 0), coalesce(sum(p.shared_entries), 0), coalesce(sum(p.bytes_stored), 0)
      FROM per_customer p
)
SELECT s.scope,
       s.customer_id,
       c.name AS customer_name,
       (s.hits + s.misses)::bigint AS lookups,
       s.hits::bigint AS hits,
       s.misses::bigint AS misses,
       CASE WHEN s.hits + s.misses > 0 THEN s.hits::numeric / (s.hits + s.misses) ELSE 0 END AS hit_rate,
       s.entries::bigint AS entries,
       s.shared_entries::bigint AS shared_entries,
       s.bytes_stored::bigint AS bytes_stored,
       s.time_saved_ms::bigint AS time_saved_ms,
       make_interval(secs => s.time_saved_ms / 1000.0) AS time_saved,
       coalesce(s.customer_id::text, 'overall') AS id
  FROM scoped s
  LEFT JOIN customers c ON c.id = s.customer_id;
