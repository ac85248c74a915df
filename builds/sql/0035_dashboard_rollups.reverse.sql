-- Back to 0033_dashboard_rollup.sql's reset and fold; build_activity_hourly, build_cache_daily and the triggers go
-- with the migration's model operations (the triggers before this file, the tables after it).
DROP FUNCTION IF EXISTS build_access_log_rollup_mark();
DROP FUNCTION IF EXISTS build_cache_registry_rollup_mark();
DROP FUNCTION IF EXISTS build_cache_daily_reset();
DROP FUNCTION IF EXISTS build_cache_daily_saved_reset();
DROP FUNCTION IF EXISTS build_daily_rollup_mark_days(date[]);
DROP FUNCTION IF EXISTS build_activity_hourly_figures(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS build_cache_daily_figures(timestamptz, timestamptz);
DROP INDEX IF EXISTS build_queue_cache_served_idx;
DROP INDEX IF EXISTS build_results_created_idx;

CREATE OR REPLACE FUNCTION build_activity_daily_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    customer_id uuid, day date, succeeded bigint, failed bigint, timed_out bigint, cancelled bigint,
    duration_ms_sum bigint, timed bigint, queue_wait_ms bigint[], wait_p50_ms float8, wait_p95_ms float8,
    cache_served bigint
)
LANGUAGE sql STABLE AS $$
WITH results AS (
    SELECT b.customer_id, (r.created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE r.status = 'failed') AS failed,
           count(*) FILTER (WHERE r.status = 'timed_out') AS timed_out,
           count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
           coalesce(sum(r.duration_ms), 0)::bigint AS duration_ms_sum,
           count(r.duration_ms) AS timed,
           coalesce(array_agg(r.queue_wait_ms ORDER BY r.queue_wait_ms) FILTER (WHERE r.queue_wait_ms IS NOT NULL),
                    '{}') AS queue_wait_ms,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.queue_wait_ms) AS wait_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY r.queue_wait_ms) AS wait_p95_ms,
           GROUPING(b.customer_id) AS all_customers
      FROM build_results r
      JOIN build_queue b ON b.id = r.build_id
     WHERE r.created_at >= p_from AND r.created_at < p_to
     GROUP BY GROUPING SETS ((b.customer_id, (r.created_at AT TIME ZONE 'UTC')::date),
                             ((r.created_at AT TIME ZONE 'UTC')::date))
), served AS (
    SELECT b.customer_id, (b.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS cache_served,
           GROUPING(b.customer_id) AS all_customers
      FROM build_queue b
     WHERE b.cache_hit AND b.created_at >= p_from AND b.created_at < p_to
     GROUP BY GROUPING SETS ((b.customer_id, (b.created_at AT TIME ZONE 'UTC')::date),
                             ((b.created_at AT TIME ZONE 'UTC')::date))
)
SELECT CASE WHEN coalesce(r.all_customers, s.all_customers) = 1 THEN NULL ELSE coalesce(r.customer_id, s.customer_id) END,
       coalesce(r.day, s.day), coalesce(r.succeeded, 0), coalesce(r.failed, 0), coalesce(r.timed_out, 0),
       coalesce(r.cancelled, 0), coalesce(r.duration_ms_sum, 0), coalesce(r.timed, 0),
       coalesce(r.queue_wait_ms, '{}'), r.wait_p50_ms, r.wait_p95_ms, coalesce(s.cache_served, 0)
  FROM results r
  FULL JOIN served s
    ON s.day = r.day AND s.all_customers = r.all_customers AND s.customer_id IS NOT DISTINCT FROM r.customer_id
$$;

-- build_daily_rollup_reset (TRUNCATE of build_queue or build_results): nothing is folded any more.
CREATE OR REPLACE FUNCTION build_daily_rollup_reset()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM build_daily_rollup;
    DELETE FROM build_activity_daily;
    DELETE FROM build_daily_rollup_dirty;
    UPDATE build_daily_rollup_state SET folded_through = NULL;
    RETURN NULL;
END;
$$;

-- fold_build_daily_rollup: as in 0032, and each folded day replaced whole in build_activity_daily too. The first
-- day is the earliest of the finished builds, the cache-served builds and the results.
CREATE OR REPLACE FUNCTION fold_build_daily_rollup(
    p_max_days integer DEFAULT 31,
    p_refold_days integer DEFAULT 2,
    p_grace interval DEFAULT interval '15 minutes'
)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_through date;
    v_closed date := ((now() - p_grace) AT TIME ZONE 'UTC')::date - 1;
    v_first timestamptz;
    v_new_through date;
    v_days date[];
BEGIN
    IF p_max_days IS NULL OR p_max_days < 1 OR p_refold_days IS NULL OR p_refold_days < 0
       OR p_grace IS NULL OR p_grace < interval '0' THEN
        RAISE EXCEPTION 'fold_build_daily_rollup needs max_days >= 1, refold_days >= 0 and a grace >= 0, got %, %, %',
            coalesce(p_max_days::text, 'NULL'), coalesce(p_refold_days::text, 'NULL'), coalesce(p_grace::text, 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
    INSERT INTO build_daily_rollup_state (id, folded_through) VALUES (1, NULL) ON CONFLICT (id) DO NOTHING;
    SELECT s.folded_through INTO v_through FROM build_daily_rollup_state s WHERE s.id = 1 FOR UPDATE;
    IF v_through IS NULL THEN
        SELECT least(
                   (SELECT min(b.finished_at) FROM build_queue b
                     WHERE b.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND b.finished_at IS NOT NULL),
                   (SELECT min(b.created_at) FROM build_queue b WHERE b.cache_hit),
                   (SELECT min(r.created_at) FROM build_results r))
          INTO v_first;
        v_through := coalesce((v_first AT TIME ZONE 'UTC')::date - 1, v_closed);
    END IF;
    v_new_through := greatest(v_through, least(v_closed, v_through + p_max_days));

    -- Dirty marks are taken first: a mark committed after this statement stays for the next fold.
    WITH taken AS (
        DELETE FROM build_daily_rollup_dirty d
         WHERE d.day IN (SELECT x.day FROM build_daily_rollup_dirty x ORDER BY x.day LIMIT p_max_days)
        RETURNING d.day
    )
    SELECT array_agg(DISTINCT day ORDER BY day) INTO v_days FROM (
        SELECT t.day FROM taken t
        UNION
        SELECT generate_series(v_through + 1, v_new_through, interval '1 day')::date
        UNION
        SELECT generate_series(v_through - p_refold_days + 1, v_through, interval '1 day')::date
    ) u(day);

    IF v_days IS NOT NULL THEN
        DELETE FROM build_daily_rollup r WHERE r.day = ANY (v_days);
        INSERT INTO build_daily_rollup (customer_id, day, total_builds, succeeded, failed, timed_out, cancelled,
                                        cache_hits, success_rate, avg_duration_seconds, p50_duration_seconds,
                                        p95_duration_seconds, avg_queue_wait_seconds, p95_queue_wait_seconds,
                                        started_builds, duration_seconds_sum, queue_wait_seconds_sum)
        SELECT f.*
          FROM unnest(v_days) d(day)
         CROSS JOIN LATERAL build_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f;
        DELETE FROM build_activity_daily a WHERE a.day = ANY (v_days);
        INSERT INTO build_activity_daily (customer_id, day, succeeded, failed, timed_out, cancelled, duration_ms_sum,
                                          timed, queue_wait_ms, wait_p50_ms, wait_p95_ms, cache_served)
        SELECT f.*
          FROM unnest(v_days) d(day)
         CROSS JOIN LATERAL build_activity_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                         ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f;
    END IF;
    UPDATE build_daily_rollup_state SET folded_through = v_new_through WHERE id = 1;
    RETURN coalesce(cardinality(v_days), 0);
END;
$$;

DROP FUNCTION IF EXISTS build_cache_daily_days();
