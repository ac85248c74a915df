-- builds.0040_cache_fold: the hourly fold of the cache access rollup reads only what it folds.
--
-- fold_cache_access_rollup() found the shards' rows with "shard >= 0" and cleared empty folded rows with
-- "shard = -1 AND hits = 0 AND misses = 0": both read the whole rollup, one row per (customer, cache entry) ever
-- looked up, which grows with the history (197,496 rows at six months, about two million at ten times the seed).
-- It took 204 ms an hour at six months with nothing to fold. Now the shards' rows come from the partial index
-- build_cache_access_delta_idx, and only the rows this fold updated can have become empty (a delete from
-- the log subtracts), so only those are checked. Same contract, same result.

CREATE OR REPLACE FUNCTION public.fold_cache_access_rollup()
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_count integer;
    v_empty bigint[];
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
        RETURNING r.id, r.hits, r.misses
    )
    SELECT (SELECT count(*) FROM moved),
           (SELECT array_agg(f.id) FROM folded f WHERE f.hits = 0 AND f.misses = 0)
      INTO v_count, v_empty;
    IF v_empty IS NOT NULL THEN
        DELETE FROM build_cache_access_rollup r WHERE r.id = ANY (v_empty) AND r.hits = 0 AND r.misses = 0;
    END IF;
    RETURN v_count;
END;
$function$;
