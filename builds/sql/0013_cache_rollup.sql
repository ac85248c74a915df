-- cache_statistics from the per-(customer, entry) rollup of the access log instead of the whole log
-- (issues 7 and 8: the view under 100 ms and its admin page under 300 ms at six-month volume).

-- Count the lookups already logged. The triggers created by this migration's transaction hold a lock on the log
-- that waits for inserting transactions and blocks new ones until the commit, so every lookup is counted once:
-- here if it committed before, by rollup_cache_access if after.
LOCK TABLE build_access_log IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO build_cache_access_rollup (customer_id, cache_entry_id, shard, hits, misses)
SELECT a.customer_id, a.cache_entry_id, -1, count(*) FILTER (WHERE a.hit), count(*) FILTER (WHERE NOT a.hit)
  FROM build_access_log a
 GROUP BY a.customer_id, a.cache_entry_id
ON CONFLICT (customer_id, cache_entry_id, shard) DO UPDATE
    SET hits = build_cache_access_rollup.hits + EXCLUDED.hits,
        misses = build_cache_access_rollup.misses + EXCLUDED.misses;

-- fold_cache_access_rollup: move the session shards of build_cache_access_rollup into each (customer, entry)'s
-- folded row (shard -1), then drop the folded rows that count nothing (every lookup archived). Exact under
-- concurrent lookups, like fold_cache_hit_counters: a shard updated while this runs is deleted in its latest
-- version and its RETURNING values are what is added; a lookup committed after the DELETE's snapshot stays in a
-- shard for the next fold. Returns the number of shard rows folded.
CREATE OR REPLACE FUNCTION fold_cache_access_rollup()
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer;
BEGIN
    WITH moved AS (
        DELETE FROM build_cache_access_rollup r WHERE r.shard >= 0
        RETURNING r.customer_id, r.cache_entry_id, r.hits, r.misses
    ), folded AS (
        INSERT INTO build_cache_access_rollup AS r (customer_id, cache_entry_id, shard, hits, misses)
        SELECT m.customer_id, m.cache_entry_id, -1, sum(m.hits), sum(m.misses)
          FROM moved m
         GROUP BY m.customer_id, m.cache_entry_id
        ON CONFLICT (customer_id, cache_entry_id, shard) DO UPDATE
            SET hits = r.hits + EXCLUDED.hits, misses = r.misses + EXCLUDED.misses
        RETURNING 1
    )
    SELECT count(*) INTO v_count FROM moved;
    DELETE FROM build_cache_access_rollup r WHERE r.shard = -1 AND r.hits = 0 AND r.misses = 0;
    RETURN v_count;
END;
$$;

-- cache_statistics: as in 0007_cache_stats.sql (same columns, same figures: the retained access log), with the
-- lookups counted from build_cache_access_rollup. Time saved is each entry's hits times its current build
-- duration, as when it was summed over the log; a customer whose lookups were all archived has no access row,
-- as before.
CREATE OR REPLACE VIEW cache_statistics AS
WITH access AS (
    SELECT r.customer_id,
           sum(r.hits) AS hits,
           sum(r.misses) AS misses,
           coalesce(sum(r.hits * e.build_duration_ms), 0) AS time_saved_ms
      FROM build_cache_access_rollup r
      LEFT JOIN build_cache_registry e ON e.id = r.cache_entry_id
     GROUP BY r.customer_id
    HAVING sum(r.hits) + sum(r.misses) > 0
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
