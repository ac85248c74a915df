-- Reverse of 0042_fold_dirty_days.sql: the fold and the activity figures functions as 0035_dashboard_rollups
-- defined them (the fold re-folding the last two days by default), build_performance_summary as 0032_daily_rollup
-- defined it, and without the new functions and indexes.

DROP INDEX IF EXISTS build_activity_hourly_all_idx;
DROP INDEX IF EXISTS build_activity_daily_all_idx;
DROP INDEX IF EXISTS build_cache_registry_duration_idx;

CREATE OR REPLACE VIEW public.build_performance_summary AS
 SELECT g.customer_id,
    c.name AS customer_name,
    g.day,
    g.total_builds,
    g.succeeded,
    g.failed,
    g.timed_out,
    g.cancelled,
    g.cache_hits,
    g.success_rate,
    g.avg_duration_seconds,
    g.p50_duration_seconds,
    g.p95_duration_seconds,
    g.avg_queue_wait_seconds,
    g.p95_queue_wait_seconds
   FROM ( SELECT r.customer_id,
            r.day,
            r.total_builds,
            r.succeeded,
            r.failed,
            r.timed_out,
            r.cancelled,
            r.cache_hits,
            r.success_rate::numeric AS success_rate,
            r.avg_duration_seconds::numeric AS avg_duration_seconds,
            r.p50_duration_seconds::numeric AS p50_duration_seconds,
            r.p95_duration_seconds::numeric AS p95_duration_seconds,
            r.avg_queue_wait_seconds::numeric AS avg_queue_wait_seconds,
            r.p95_queue_wait_seconds::numeric AS p95_queue_wait_seconds
           FROM build_daily_rollup r
          WHERE NOT (EXISTS ( SELECT 1
                   FROM build_daily_rollup_dirty d
                  WHERE d.day = r.day))
        UNION ALL
         SELECT f.customer_id,
            f.day,
            f.total_builds,
            f.succeeded,
            f.failed,
            f.timed_out,
            f.cancelled,
            f.cache_hits,
            f.success_rate,
            f.avg_duration_seconds,
            f.p50_duration_seconds,
            f.p95_duration_seconds,
            f.avg_queue_wait_seconds,
            f.p95_queue_wait_seconds
           FROM ( SELECT max(s_1.folded_through) AS through
                   FROM build_daily_rollup_state s_1) s
             CROSS JOIN LATERAL build_daily_figures(COALESCE(((s.through + 1)::timestamp without time zone AT TIME ZONE 'UTC'::text), '-infinity'::timestamp with time zone), 'infinity'::timestamp with time zone) f(customer_id, day, total_builds, succeeded, failed, timed_out, cancelled, cache_hits, success_rate, avg_duration_seconds, p50_duration_seconds, p95_duration_seconds, avg_queue_wait_seconds, p95_queue_wait_seconds, started_builds, duration_seconds_sum, queue_wait_seconds_sum)
        UNION ALL
         SELECT f.customer_id,
            f.day,
            f.total_builds,
            f.succeeded,
            f.failed,
            f.timed_out,
            f.cancelled,
            f.cache_hits,
            f.success_rate,
            f.avg_duration_seconds,
            f.p50_duration_seconds,
            f.p95_duration_seconds,
            f.avg_queue_wait_seconds,
            f.p95_queue_wait_seconds
           FROM build_daily_rollup_dirty d
             CROSS JOIN LATERAL build_daily_figures((d.day::timestamp without time zone AT TIME ZONE 'UTC'::text), ((d.day + 1)::timestamp without time zone AT TIME ZONE 'UTC'::text)) f(customer_id, day, total_builds, succeeded, failed, timed_out, cancelled, cache_hits, success_rate, avg_duration_seconds, p50_duration_seconds, p95_duration_seconds, avg_queue_wait_seconds, p95_queue_wait_seconds, started_builds, duration_seconds_sum, queue_wait_seconds_sum)) g
     JOIN customers c ON c.id = g.customer_id;

CREATE OR REPLACE FUNCTION public.fold_build_daily_rollup(p_max_days integer DEFAULT 31, p_refold_days integer DEFAULT 2, p_grace interval DEFAULT '00:15:00'::interval)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_through date;
    v_closed date := ((now() - p_grace) AT TIME ZONE 'UTC')::date - 1;
    v_cache_since date := ((now() - p_grace) AT TIME ZONE 'UTC')::date - build_cache_daily_days();
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
                   (SELECT min(r.created_at) FROM build_results r),
                   (SELECT v_cache_since::timestamp AT TIME ZONE 'UTC'
                     WHERE EXISTS (SELECT 1 FROM build_access_log a
                                    WHERE a.accessed_at >= (v_cache_since::timestamp AT TIME ZONE 'UTC'))))
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
        DELETE FROM build_activity_hourly h
         USING unnest(v_days) d(day)
         WHERE h.hour >= (d.day::timestamp AT TIME ZONE 'UTC') AND h.hour < ((d.day + 1)::timestamp AT TIME ZONE 'UTC');
        INSERT INTO build_activity_hourly (customer_id, hour, succeeded, failed, timed_out, cancelled,
                                           duration_ms_sum, timed, queue_wait_ms, cache_served)
        SELECT f.*
          FROM unnest(v_days) d(day)
         CROSS JOIN LATERAL build_activity_hourly_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                          ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f;
        DELETE FROM build_cache_daily c WHERE c.day = ANY (v_days);
        INSERT INTO build_cache_daily (day, hits, misses, saved_ms)
        SELECT f.*
          FROM unnest(v_days) d(day)
         CROSS JOIN LATERAL build_cache_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                      ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f
         WHERE d.day >= v_cache_since;
    END IF;
    DELETE FROM build_cache_daily c WHERE c.day < v_cache_since;
    UPDATE build_daily_rollup_state SET folded_through = v_new_through WHERE id = 1;
    RETURN coalesce(cardinality(v_days), 0);
END;
$function$;

DROP FUNCTION IF EXISTS build_daily_rollup_last_closed(timestamptz, interval);
DROP FUNCTION IF EXISTS build_daily_rollup_oldest_open();

CREATE OR REPLACE FUNCTION public.build_activity_daily_figures(p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS TABLE(customer_id uuid, day date, succeeded bigint, failed bigint, timed_out bigint, cancelled bigint, duration_ms_sum bigint, timed bigint, queue_wait_ms bigint[], wait_p50_ms double precision, wait_p95_ms double precision, cache_served bigint)
 LANGUAGE plpgsql
 STABLE ROWS 31
 SET jit TO 'off'
AS $function$
BEGIN
    RETURN QUERY EXECUTE $q$
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
         WHERE r.created_at >= $1 AND r.created_at < $2
         GROUP BY GROUPING SETS ((b.customer_id, (r.created_at AT TIME ZONE 'UTC')::date),
                                 ((r.created_at AT TIME ZONE 'UTC')::date))
    ), served AS (
        SELECT b.customer_id, (b.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS cache_served,
               GROUPING(b.customer_id) AS all_customers
          FROM build_queue b
         WHERE b.cache_hit AND b.created_at >= $1 AND b.created_at < $2
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
    $q$ USING p_from, p_to;
END;
$function$;

CREATE OR REPLACE FUNCTION public.build_activity_hourly_figures(p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS TABLE(customer_id uuid, hour timestamp with time zone, succeeded bigint, failed bigint, timed_out bigint, cancelled bigint, duration_ms_sum bigint, timed bigint, queue_wait_ms bigint[], cache_served bigint)
 LANGUAGE plpgsql
 STABLE ROWS 48
 SET jit TO 'off'
AS $function$
BEGIN
    RETURN QUERY EXECUTE $q$
    WITH results AS (
        SELECT b.customer_id, date_bin(interval '1 hour', r.created_at, timestamptz '2000-01-01 00:00+00') AS hour,
               count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
               count(*) FILTER (WHERE r.status = 'failed') AS failed,
               count(*) FILTER (WHERE r.status = 'timed_out') AS timed_out,
               count(*) FILTER (WHERE r.status = 'cancelled') AS cancelled,
               coalesce(sum(r.duration_ms), 0)::bigint AS duration_ms_sum,
               count(r.duration_ms) AS timed,
               coalesce(array_agg(r.queue_wait_ms ORDER BY r.queue_wait_ms) FILTER (WHERE r.queue_wait_ms IS NOT NULL),
                        '{}') AS queue_wait_ms,
               GROUPING(b.customer_id) AS all_customers
          FROM build_results r
          JOIN build_queue b ON b.id = r.build_id
         WHERE r.created_at >= $1 AND r.created_at < $2
         GROUP BY GROUPING SETS ((b.customer_id, 2), (2))
    ), served AS (
        SELECT b.customer_id, date_bin(interval '1 hour', b.created_at, timestamptz '2000-01-01 00:00+00') AS hour,
               count(*) AS cache_served, GROUPING(b.customer_id) AS all_customers
          FROM build_queue b
         WHERE b.cache_hit AND b.created_at >= $1 AND b.created_at < $2
         GROUP BY GROUPING SETS ((b.customer_id, 2), (2))
    )
    SELECT CASE WHEN coalesce(r.all_customers, s.all_customers) = 1 THEN NULL ELSE coalesce(r.customer_id, s.customer_id) END,
           coalesce(r.hour, s.hour), coalesce(r.succeeded, 0), coalesce(r.failed, 0), coalesce(r.timed_out, 0),
           coalesce(r.cancelled, 0), coalesce(r.duration_ms_sum, 0), coalesce(r.timed, 0),
           coalesce(r.queue_wait_ms, '{}'), coalesce(s.cache_served, 0)
      FROM results r
      FULL JOIN served s
        ON s.hour = r.hour AND s.all_customers = r.all_customers AND s.customer_id IS NOT DISTINCT FROM r.customer_id
    $q$ USING p_from, p_to;
END;
$function$;
