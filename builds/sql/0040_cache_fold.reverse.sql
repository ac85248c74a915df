-- Reverse of 0040_cache_fold.sql: the fold as 0013_cache_rollup defined it (the migration's model operations then
-- drop build_cache_access_delta_idx).

CREATE OR REPLACE FUNCTION public.fold_cache_access_rollup()
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
$function$;
