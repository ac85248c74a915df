-- The rest of the operator dashboard from rollups of closed days plus today's live rows (issue 15):
-- build_activity_hourly (the 24-hour and 7-day build activity) and build_cache_daily (the 30-day cache hit rate and
-- time saved), folded, re-folded and marked dirty with build_daily_rollup (0032) and build_activity_daily (0033):
-- all share folded_through and the dirty days, and fold_build_daily_rollup folds them together.

-- Today's cache-served builds (the live part of every range) without reading the queue's history.
CREATE INDEX IF NOT EXISTS build_queue_cache_served_idx ON build_queue (created_at) INCLUDE (customer_id)
    WHERE cache_hit;

-- Today's results (the live part of every range) by a range of this index: the BRIN index on created_at only
-- helps where results were written in time order, and the seeded history is not (correlation 0.006), so the
-- planner read the whole (build_id, created_at) index instead, a cost that grew with the history.
CREATE INDEX IF NOT EXISTS build_results_created_idx ON build_results (created_at);

-- build_cache_daily_days: how many closed days build_cache_daily keeps (the dashboard reads 30, today included).
CREATE OR REPLACE FUNCTION build_cache_daily_days()
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 40 $$;

-- The figures functions (build_activity_daily_figures of 0033 included, same figures) plan their query for the
-- bounds they are given (EXECUTE ... USING): the dashboard calls them laterally for the live days, bounds that a
-- plan of the calling query (or a generic plan) only learns at run time, so it was estimated over every partition
-- of the log, over jit_above_cost (PostgreSQL spent 2.5 s compiling a plan that ran in 34 ms), and read the
-- results by a whole index instead of today's rows. Planned with the bounds, today's call prunes to today's
-- partition and rows; JIT stays off (a call reads a day). ROWS: what a call returns, about.
CREATE OR REPLACE FUNCTION build_activity_daily_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    customer_id uuid, day date, succeeded bigint, failed bigint, timed_out bigint, cancelled bigint,
    duration_ms_sum bigint, timed bigint, queue_wait_ms bigint[], wait_p50_ms float8, wait_p95_ms float8,
    cache_served bigint
)
LANGUAGE plpgsql STABLE ROWS 31 SET jit = off AS $$
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
$$;

-- build_activity_hourly_figures: build_activity_daily_figures by the UTC hour of the result's (and cache-served
-- build's) created_at, for [p_from, p_to): per (customer, hour) and per hour over every customer (customer_id
-- NULL); the hour's queue waits sorted.
CREATE OR REPLACE FUNCTION build_activity_hourly_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    customer_id uuid, hour timestamptz, succeeded bigint, failed bigint, timed_out bigint, cancelled bigint,
    duration_ms_sum bigint, timed bigint, queue_wait_ms bigint[], cache_served bigint
)
LANGUAGE plpgsql STABLE ROWS 48 SET jit = off AS $$
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
$$;

-- build_cache_daily_figures: the dashboard's cache figures per UTC day of accessed_at for the lookups in
-- [p_from, p_to): hits, misses, and the hit entries' build_duration_ms summed (an entry that is gone saves 0).
CREATE OR REPLACE FUNCTION build_cache_daily_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (day date, hits bigint, misses bigint, saved_ms bigint)
LANGUAGE plpgsql STABLE ROWS 2 SET jit = off AS $$
BEGIN
    RETURN QUERY EXECUTE $q$
    SELECT (a.accessed_at AT TIME ZONE 'UTC')::date,
           count(*) FILTER (WHERE a.hit),
           count(*) FILTER (WHERE NOT a.hit),
           coalesce(sum(e.build_duration_ms) FILTER (WHERE a.hit), 0)::bigint
      FROM build_access_log a
      LEFT JOIN build_cache_registry e ON e.id = a.cache_entry_id AND a.hit
     WHERE a.accessed_at >= $1 AND a.accessed_at < $2
     GROUP BY 1
    $q$ USING p_from, p_to;
END;
$$;

-- build_daily_rollup_mark_days: mark the folded closed days among p_days dirty (what build_daily_rollup_mark and
-- build_results_rollup_mark do for their rows), under the share lock on the state row that orders a mark with a
-- concurrent fold.
CREATE OR REPLACE FUNCTION build_daily_rollup_mark_days(p_days date[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_through date;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM unnest(p_days) d WHERE d < v_today) THEN
        RETURN;
    END IF;
    SELECT s.folded_through INTO v_through FROM build_daily_rollup_state s WHERE s.id = 1 FOR SHARE;
    IF v_through IS NOT NULL THEN
        INSERT INTO build_daily_rollup_dirty (day)
        SELECT DISTINCT d FROM unnest(p_days) d WHERE d <= v_through AND d < v_today
        ON CONFLICT (day) DO NOTHING;
    END IF;
END;
$$;

-- build_access_log_rollup_mark (trigger on build_access_log): a lookup inserted into a past day (a row trigger
-- whose WHEN lets today's lookups, the hot path, by), and lookups moved or deleted (statement triggers with the
-- transition tables) mark their days, within build_cache_daily's days only.
CREATE OR REPLACE FUNCTION build_access_log_rollup_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_since date := (clock_timestamp() AT TIME ZONE 'UTC')::date - build_cache_daily_days();
    v_days date[] := '{}';
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        v_days := ARRAY[(NEW.accessed_at AT TIME ZONE 'UTC')::date];
    ELSE
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            v_days := v_days || ARRAY(SELECT DISTINCT (o.accessed_at AT TIME ZONE 'UTC')::date FROM old_rows o);
        END IF;
        IF TG_OP = 'UPDATE' THEN
            v_days := v_days || ARRAY(SELECT DISTINCT (n.accessed_at AT TIME ZONE 'UTC')::date FROM new_rows n);
        END IF;
    END IF;
    v_days := ARRAY(SELECT DISTINCT d FROM unnest(v_days) d WHERE d >= v_since);
    IF cardinality(v_days) > 0 THEN
        PERFORM build_daily_rollup_mark_days(v_days);
    END IF;
    RETURN NULL;
END;
$$;

-- build_cache_registry_rollup_mark (trigger on build_cache_registry): an entry whose build_duration_ms changed
-- (row) or that was deleted (statement) changes the time saved on the days it was hit: those days are marked,
-- found through the log's (cache_entry_id, accessed_at) index within build_cache_daily's days.
CREATE OR REPLACE FUNCTION build_cache_registry_rollup_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_from timestamptz := (v_today - build_cache_daily_days())::timestamp AT TIME ZONE 'UTC';
    v_to timestamptz := v_today::timestamp AT TIME ZONE 'UTC';
    v_ids uuid[];
    v_days date[];
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        v_ids := ARRAY[OLD.id];
    ELSE
        v_ids := ARRAY(SELECT o.id FROM old_rows o);
    END IF;
    SELECT array_agg(DISTINCT (a.accessed_at AT TIME ZONE 'UTC')::date) INTO v_days
      FROM build_access_log a
     WHERE a.cache_entry_id = ANY (v_ids) AND a.hit AND a.accessed_at >= v_from AND a.accessed_at < v_to;
    IF v_days IS NOT NULL THEN
        PERFORM build_daily_rollup_mark_days(v_days);
    END IF;
    RETURN NULL;
END;
$$;

-- build_cache_daily_reset (TRUNCATE of build_access_log): no lookup is left on any day.
-- build_cache_daily_saved_reset (TRUNCATE of build_cache_registry): no hit saves anything any more.
CREATE OR REPLACE FUNCTION build_cache_daily_reset()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM build_cache_daily;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION build_cache_daily_saved_reset()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE build_cache_daily SET saved_ms = 0 WHERE saved_ms <> 0;
    RETURN NULL;
END;
$$;

-- build_daily_rollup_reset (TRUNCATE of build_queue or build_results): nothing is folded any more.
CREATE OR REPLACE FUNCTION build_daily_rollup_reset()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM build_daily_rollup;
    DELETE FROM build_activity_daily;
    DELETE FROM build_activity_hourly;
    DELETE FROM build_cache_daily;
    DELETE FROM build_daily_rollup_dirty;
    UPDATE build_daily_rollup_state SET folded_through = NULL;
    RETURN NULL;
END;
$$;

-- fold_build_daily_rollup: as in 0033, and each folded day's hours replaced whole in build_activity_hourly and,
-- for the last build_cache_daily_days() closed days, the day replaced in build_cache_daily (older days are dropped
-- from it). The first day is the earliest of the builds and results, or the first of build_cache_daily's days
-- when lookups were logged since then.
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
$$;

-- Backfill: the days already folded get their hours and cache figures, in batches of 31 days (each batch one
-- statement over a month of results and lookups, not the whole history at once).
DO $$
DECLARE
    v_through date;
    v_day date;
    v_cache_since date := (now() AT TIME ZONE 'UTC')::date - build_cache_daily_days();
BEGIN
    SELECT s.folded_through INTO v_through FROM build_daily_rollup_state s WHERE s.id = 1;
    IF v_through IS NULL THEN
        RETURN;
    END IF;
    SELECT min(a.day) INTO v_day FROM build_activity_daily a;
    v_day := coalesce(v_day, v_through + 1);
    WHILE v_day <= v_through LOOP
        INSERT INTO build_activity_hourly (customer_id, hour, succeeded, failed, timed_out, cancelled,
                                           duration_ms_sum, timed, queue_wait_ms, cache_served)
        SELECT f.* FROM build_activity_hourly_figures(v_day::timestamp AT TIME ZONE 'UTC',
                                                      (least(v_day + 31, v_through + 1))::timestamp AT TIME ZONE 'UTC') f;
        v_day := v_day + 31;
    END LOOP;
    v_day := greatest(v_cache_since, v_through - build_cache_daily_days());
    WHILE v_day <= v_through LOOP
        INSERT INTO build_cache_daily (day, hits, misses, saved_ms)
        SELECT f.* FROM build_cache_daily_figures(v_day::timestamp AT TIME ZONE 'UTC',
                                                  (least(v_day + 7, v_through + 1))::timestamp AT TIME ZONE 'UTC') f;
        v_day := v_day + 7;
    END LOOP;
END;
$$;
