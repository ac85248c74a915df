-- builds.0046_cache_statistics_per_customer: cache_statistics read for one customer reads that customer's rows only.
--
-- The web layer reads one customer's row (SELECT * FROM cache_statistics WHERE customer_id = $1), and that read cost
-- as much as the whole view: the per-customer figures were a CTE read twice (the customer rows and the overall row),
-- so PostgreSQL computed it whole, for every customer, before filtering it, and its FULL JOIN on a COALESCE'd key
-- would have stopped the filter anyway. At ten times the seed one customer's row took 21.2 ms against 24.4 ms for
-- the whole view, and 3.0 ms at the six-month volume: it grew with the number of customers. Now:
--   * the customer rows are one aggregate per customer over a UNION ALL of the customer's access (its months and
--     its shards not folded yet, with the same HAVING as before) and its storage, with no CTE and no FULL JOIN, so
--     a filter on customer_id reaches every scan: build_cache_month_customer_idx (build_cache_access_monthly, whose
--     key leads with the month), build_cache_delta_customer_idx (the shards not folded yet, per partition) and
--     build_cache_owner_idx (the registry, index-only), each probed for that customer;
--   * the overall row is computed on its own: the access summed over the customers that pass the same HAVING, and
--     the live entries' totals. Under a filter on customer_id it is skipped (its customer_id is NULL).
-- The whole view reads the registry's owner index twice (per owner, and the totals) where it read it once.
-- The migration's Django operations build the two indexes first; the rollup's is built on every partition under a
-- SHARE lock (lookups, which count in the rollup, wait meanwhile). Here the partitions' copies are renamed as
-- partition_create_table names those of a month created later.
-- The columns, their types, the rows and the figures are unchanged.

DO $$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT ci.relname AS child, pi.relname AS parent, substring(ct.relname FROM '_(p[0-9]{6}|default)$') AS suffix
          FROM pg_inherits i
          JOIN pg_class ci ON ci.oid = i.inhrelid
          JOIN pg_class pi ON pi.oid = i.inhparent
          JOIN pg_index x ON x.indexrelid = ci.oid
          JOIN pg_class ct ON ct.oid = x.indrelid
         WHERE pi.relname = 'build_cache_delta_customer_idx'
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', v.child, left(v.parent, 62 - length(v.suffix)) || '_' || v.suffix);
    END LOOP;
END
$$;

CREATE OR REPLACE VIEW cache_statistics AS
WITH scoped AS (
    -- One row per customer with lookups or live entries: its access and its storage, each grouped on its own (the
    -- access with the HAVING of builds.0041_cache_month_rollup) and added up. A filter on customer_id is pushed
    -- into every branch.
    SELECT 'customer'::text AS scope,
           k.customer_id,
           sum(k.hits) AS hits,
           sum(k.misses) AS misses,
           sum(k.time_saved_ms) AS time_saved_ms,
           sum(k.entries) AS entries,
           sum(k.shared_entries) AS shared_entries,
           sum(k.bytes_stored) AS bytes_stored
      FROM (SELECT a.customer_id, sum(a.hits) AS hits, sum(a.misses) AS misses, sum(a.time_saved_ms) AS time_saved_ms,
                   0 AS entries, 0 AS shared_entries, 0 AS bytes_stored
              FROM (SELECT m.customer_id, m.hits, m.misses, m.time_saved_ms
                      FROM build_cache_access_monthly m
                    UNION ALL
                    -- The lookups since the last fold, priced as they are read.
                    SELECT r.customer_id, r.hits, r.misses, r.hits * coalesce(e.build_duration_ms, 0)
                      FROM build_cache_access_rollup r
                      LEFT JOIN build_cache_registry e ON e.id = r.cache_entry_id
                     WHERE r.shard >= 0) a
             GROUP BY a.customer_id
            HAVING sum(a.hits) + sum(a.misses) > 0
            UNION ALL
            SELECT e.owner_id, 0, 0, 0, count(*), count(*) FILTER (WHERE e.visibility = 'shared'), sum(e.size_bytes)
              FROM build_cache_registry e
             WHERE e.deleted_at IS NULL
             GROUP BY e.owner_id) k
     GROUP BY k.customer_id
    UNION ALL
    -- The overall row: the same access summed over every customer that shows it, and every live entry.
    SELECT 'overall',
           NULL::uuid,
           coalesce(a.hits, 0),
           coalesce(a.misses, 0),
           coalesce(a.time_saved_ms, 0),
           s.entries,
           s.shared_entries,
           s.bytes_stored
      FROM (SELECT sum(p.hits) AS hits, sum(p.misses) AS misses, sum(p.time_saved_ms) AS time_saved_ms
              FROM (SELECT sum(x.hits) AS hits, sum(x.misses) AS misses, sum(x.time_saved_ms) AS time_saved_ms
                      FROM (SELECT m.customer_id, m.hits, m.misses, m.time_saved_ms
                              FROM build_cache_access_monthly m
                            UNION ALL
                            SELECT r.customer_id, r.hits, r.misses, r.hits * coalesce(e.build_duration_ms, 0)
                              FROM build_cache_access_rollup r
                              LEFT JOIN build_cache_registry e ON e.id = r.cache_entry_id
                             WHERE r.shard >= 0) x
                     GROUP BY x.customer_id
                    HAVING sum(x.hits) + sum(x.misses) > 0) p) a
     CROSS JOIN (SELECT count(*)::numeric AS entries,
                        count(*) FILTER (WHERE e.visibility = 'shared')::numeric AS shared_entries,
                        coalesce(sum(e.size_bytes), 0) AS bytes_stored
                   FROM build_cache_registry e
                  WHERE e.deleted_at IS NULL) s
)
SELECT s.scope,
       s.customer_id,
       c.name AS customer_name,
       (s.hits + s.misses)::bigint AS lookups,
       s.hits::bigint AS hits,
       s.misses::bigint AS misses,
       CASE WHEN s.hits + s.misses > 0 THEN s.hits / (s.hits + s.misses) ELSE 0 END AS hit_rate,
       s.entries::bigint AS entries,
       s.shared_entries::bigint AS shared_entries,
       s.bytes_stored::bigint AS bytes_stored,
       s.time_saved_ms::bigint AS time_saved_ms,
       make_interval(secs => s.time_saved_ms / 1000.0) AS time_saved,
       coalesce(s.customer_id::text, 'overall') AS id
  FROM scoped s
  LEFT JOIN customers c ON c.id = s.customer_id;
