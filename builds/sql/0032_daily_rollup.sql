-- build_performance_summary from a per-customer-day rollup of the closed days plus the queue's rows of the days
-- not folded yet (issue 15), so its cost follows the number of customer-days, not the number of builds in the
-- history. Same columns and figures as 0012_views_perf.sql: a build belongs to the UTC day of its finished_at.

-- The live part reads the days after the last folded one by finished_at.
CREATE INDEX IF NOT EXISTS build_queue_finished_at_idx
    ON build_queue (finished_at)
    INCLUDE (customer_id, status, cache_hit, created_at, started_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND finished_at IS NOT NULL;

INSERT INTO build_daily_rollup_state (id, folded_through) VALUES (1, NULL) ON CONFLICT (id) DO NOTHING;

-- build_daily_figures: the view's figures per (customer, UTC day) for the builds finished in [p_from, p_to), with
-- the sums a range's averages need. One SELECT, so the planner inlines it with its bounds.
CREATE OR REPLACE FUNCTION build_daily_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (
    customer_id uuid, day date, total_builds bigint, succeeded bigint, failed bigint, timed_out bigint,
    cancelled bigint, cache_hits bigint, success_rate numeric, avg_duration_seconds numeric,
    p50_duration_seconds numeric, p95_duration_seconds numeric, avg_queue_wait_seconds numeric,
    p95_queue_wait_seconds numeric, started_builds bigint, duration_seconds_sum numeric,
    queue_wait_seconds_sum numeric
)
LANGUAGE sql STABLE AS $$
SELECT b.customer_id,
       (b.finished_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS total_builds,
       count(*) FILTER (WHERE b.status = 'succeeded' AND NOT b.cache_hit) AS succeeded,
       count(*) FILTER (WHERE b.status = 'failed') AS failed,
       count(*) FILTER (WHERE b.status = 'timed_out') AS timed_out,
       count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE b.cache_hit) AS cache_hits,
       round(count(*) FILTER (WHERE b.status = 'succeeded' AND NOT b.cache_hit)::numeric
             / NULLIF(count(*) FILTER (WHERE b.status IN ('succeeded', 'failed', 'timed_out') AND NOT b.cache_hit),
                      0)::numeric, 4) AS success_rate,
       round(avg(EXTRACT(epoch FROM b.finished_at - b.started_at)) FILTER (WHERE b.started_at IS NOT NULL), 3),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(epoch FROM b.finished_at - b.started_at)::float8)
             FILTER (WHERE b.started_at IS NOT NULL)::numeric, 3),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(epoch FROM b.finished_at - b.started_at)::float8)
             FILTER (WHERE b.started_at IS NOT NULL)::numeric, 3),
       round(avg(EXTRACT(epoch FROM b.started_at - b.created_at)) FILTER (WHERE b.started_at IS NOT NULL), 3),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(epoch FROM b.started_at - b.created_at)::float8)
             FILTER (WHERE b.started_at IS NOT NULL)::numeric, 3),
       count(b.started_at) AS started_builds,
       sum(EXTRACT(epoch FROM b.finished_at - b.started_at)) AS duration_seconds_sum,
       sum(EXTRACT(epoch FROM b.started_at - b.created_at)) AS queue_wait_seconds_sum
  FROM build_queue b
 WHERE b.status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
   AND b.finished_at IS NOT NULL
   AND b.finished_at >= p_from AND b.finished_at < p_to
 GROUP BY b.customer_id, (b.finished_at AT TIME ZONE 'UTC')::date
$$;

-- build_daily_rollup_mark (trigger, AFTER INSERT/UPDATE/DELETE of a finished build): a change to a build of a
-- closed day that is already folded marks the day in build_daily_rollup_dirty, so the view reads it live and the
-- next fold re-folds it. Today's completions (the hot path) never get past the first test. The share lock on the
-- state row orders the mark with a concurrent fold: the fold waits for this transaction, or this waits for the
-- fold and then sees its new folded_through.
CREATE OR REPLACE FUNCTION build_daily_rollup_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_days date[] := '{}';
    v_through date;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.finished_at IS NOT NULL THEN
        v_days := v_days || (OLD.finished_at AT TIME ZONE 'UTC')::date;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.finished_at IS NOT NULL THEN
        v_days := v_days || (NEW.finished_at AT TIME ZONE 'UTC')::date;
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

-- build_daily_rollup_reset (trigger, AFTER TRUNCATE build_queue): nothing is folded any more.
CREATE OR REPLACE FUNCTION build_daily_rollup_reset()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM build_daily_rollup;
    DELETE FROM build_daily_rollup_dirty;
    UPDATE build_daily_rollup_state SET folded_through = NULL;
    RETURN NULL;
END;
$$;

-- fold_build_daily_rollup: fold up to p_max_days closed days after folded_through (oldest first), the days marked
-- dirty (at most p_max_days), and re-fold the last p_refold_days folded days (a change that slipped past the
-- mark, e.g. a transaction that began before midnight and committed after the fold). A day is closed when it
-- ended at least p_grace ago. Each day is replaced whole (delete, then insert from the queue), so folding a day
-- again gives the same rows. Returns the number of days folded; 0 when there is nothing left to do.
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
        SELECT min(b.finished_at) INTO v_first FROM build_queue b
         WHERE b.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND b.finished_at IS NOT NULL;
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
    END IF;
    UPDATE build_daily_rollup_state SET folded_through = v_new_through WHERE id = 1;
    RETURN coalesce(cardinality(v_days), 0);
END;
$$;

-- build_performance_summary: the folded days from the rollup (less the days marked dirty), the days after
-- folded_through and the dirty days from the queue.
CREATE OR REPLACE VIEW build_performance_summary AS
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
  FROM (
        SELECT r.customer_id, r.day, r.total_builds, r.succeeded, r.failed, r.timed_out, r.cancelled, r.cache_hits,
               r.success_rate::numeric AS success_rate, r.avg_duration_seconds::numeric AS avg_duration_seconds,
               r.p50_duration_seconds::numeric AS p50_duration_seconds,
               r.p95_duration_seconds::numeric AS p95_duration_seconds,
               r.avg_queue_wait_seconds::numeric AS avg_queue_wait_seconds,
               r.p95_queue_wait_seconds::numeric AS p95_queue_wait_seconds
          FROM build_daily_rollup r
         WHERE NOT EXISTS (SELECT 1 FROM build_daily_rollup_dirty d WHERE d.day = r.day)
        UNION ALL
        SELECT f.customer_id, f.day, f.total_builds, f.succeeded, f.failed, f.timed_out, f.cancelled, f.cache_hits,
               f.success_rate, f.avg_duration_seconds, f.p50_duration_seconds, f.p95_duration_seconds,
               f.avg_queue_wait_seconds, f.p95_queue_wait_seconds
          FROM (SELECT max(s.folded_through) AS through FROM build_daily_rollup_state s) s
         CROSS JOIN LATERAL build_daily_figures(
               coalesce((s.through + 1)::timestamp AT TIME ZONE 'UTC', '-infinity'), 'infinity') f
        UNION ALL
        SELECT f.customer_id, f.day, f.total_builds, f.succeeded, f.failed, f.timed_out, f.cancelled, f.cache_hits,
               f.success_rate, f.avg_duration_seconds, f.p50_duration_seconds, f.p95_duration_seconds,
               f.avg_queue_wait_seconds, f.p95_queue_wait_seconds
          FROM build_daily_rollup_dirty d
         CROSS JOIN LATERAL build_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f
       ) g
  JOIN customers c ON c.id = g.customer_id;
