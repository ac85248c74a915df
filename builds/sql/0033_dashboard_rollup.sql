-- The console dashboard's 30-day build activity from a per-day rollup of the closed days plus the live days
-- (issue 15): build_activity_daily, folded, re-folded and marked dirty together with build_daily_rollup (0032), so
-- both share folded_through and the dirty days. The figures are console.selectors.build_activity's: an attempt
-- (build_results) belongs to the UTC day of its created_at, a cache-served build to the day of its created_at.

-- build_activity_daily_figures: per (customer, UTC day) and per day over every customer (customer_id NULL) for
-- the results and cache-served builds created in [p_from, p_to): counts by status, the duration sum and count,
-- the day's queue waits (sorted) and their p50/p95. Every result has its build (a cascading foreign key).
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

-- build_results_rollup_mark (statement trigger, AFTER INSERT/UPDATE/DELETE on build_results, with the transition
-- tables old_rows/new_rows): marks the folded days whose results changed, like build_daily_rollup_mark.
CREATE OR REPLACE FUNCTION build_results_rollup_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_days date[] := '{}';
    v_through date;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_days := v_days || ARRAY(SELECT DISTINCT (o.created_at AT TIME ZONE 'UTC')::date FROM old_rows o);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        v_days := v_days || ARRAY(SELECT DISTINCT (n.created_at AT TIME ZONE 'UTC')::date FROM new_rows n);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM unnest(v_days) d WHERE d < v_today) THEN
        RETURN NULL;
    END IF;
    SELECT s.folded_through INTO v_through FROM build_daily_rollup_state s WHERE s.id = 1 FOR SHARE;
    IF v_through IS NOT NULL THEN
        INSERT INTO build_daily_rollup_dirty (day)
        SELECT DISTINCT d FROM unnest(v_days) d WHERE d <= v_through
        ON CONFLICT (day) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

-- build_daily_rollup_mark: as in 0032, and a cache-served build also marks the day of its created_at (the day
-- build_activity_daily counts it in).
CREATE OR REPLACE FUNCTION build_daily_rollup_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_days date[] := '{}';
    v_through date;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF OLD.finished_at IS NOT NULL THEN
            v_days := v_days || (OLD.finished_at AT TIME ZONE 'UTC')::date;
        END IF;
        IF OLD.cache_hit THEN
            v_days := v_days || (OLD.created_at AT TIME ZONE 'UTC')::date;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        IF NEW.finished_at IS NOT NULL THEN
            v_days := v_days || (NEW.finished_at AT TIME ZONE 'UTC')::date;
        END IF;
        IF NEW.cache_hit THEN
            v_days := v_days || (NEW.created_at AT TIME ZONE 'UTC')::date;
        END IF;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM unnest(v_days) d WHERE d < v_today) THEN
        RETURN NULL;
    END IF;
    SELECT s.folded_through INTO v_through FROM build_daily_rollup_state s WHERE s.id = 1 FOR SHARE;
    IF v_through IS NOT NULL THEN
        INSERT INTO build_daily_rollup_dirty (day)
        SELECT DISTINCT d FROM unnest(v_days) d WHERE d <= v_through
        ON CONFLICT (day) DO NOTHING;
    END IF;
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

-- The days folded before this migration have no build_activity_daily rows: start both rollups again (the readers
-- read the queue live meanwhile; the hourly fold catches up 31 days a run).
DELETE FROM build_daily_rollup;
DELETE FROM build_daily_rollup_dirty;
UPDATE build_daily_rollup_state SET folded_through = NULL;
