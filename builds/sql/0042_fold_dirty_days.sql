-- builds.0042_fold_dirty_days: the hourly fold of the build rollups folds only the days that are dirty or newly
-- closed, and the readers of the rollups find their rows by index.
--
-- fold_build_daily_rollup re-folded the last two folded days into all four rollups on every call (its
-- p_refold_days, 2 by default and in the hourly task): 881 ms of every hourly run at ten times the seed, with
-- nothing new to fold. The re-fold was the safety net for one case the dirty marks cannot see: a transaction that
-- wrote a row of a day before that day ended (the mark triggers let today's rows by) and committed only after the
-- fold had folded the day without it. Late changes to folded days are marked dirty by the triggers (0032, 0033,
-- 0035, 0038) under the share lock on the state row, so they need no re-fold. Now a day is closed only when no
-- transaction that began before the day ended is still open in this database (build_daily_rollup_last_closed): the
-- fold reads every such transaction's rows, so a day is folded once, and again only when marked. A day held back
-- stays read live (the readers read every day after folded_through), so the figures are right meanwhile.
-- p_refold_days keeps its meaning for callers that pass it; its default is now 0. With nothing dirty and no day
-- newly closed a call writes no row at all.

-- build_daily_rollup_oldest_open: when the oldest transaction still open in this database (other than the
-- caller's) that has written anything (it has a transaction id) began; NULL when there is none. One that has
-- written nothing yet can only write its rows of a past day from now on, and those the mark triggers see, so an
-- idle or read-only session holds no day open. It reads pg_stat_activity, which shows the start of another role's
-- transactions only to members of pg_read_all_stats: the role that runs maintenance must be the writers' role
-- or such a member (docs/operations.md). Prepared transactions are not counted (the project prepares none).
CREATE OR REPLACE FUNCTION build_daily_rollup_oldest_open()
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_oldest timestamptz;
BEGIN
    PERFORM pg_stat_clear_snapshot();  -- the sessions as they are now, not as first read in this transaction
    SELECT min(a.xact_start) INTO v_oldest
      FROM pg_stat_activity a
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
       AND a.backend_xid IS NOT NULL;
    RETURN v_oldest;
END;
$$;

-- build_daily_rollup_last_closed: the last UTC day closed at p_now: it ended at least p_grace before p_now, and
-- no transaction of this database that began before it ended is still open (one may hold rows of the day that
-- the mark triggers let by as today's). The fold passes now(); a test passes a later moment.
CREATE OR REPLACE FUNCTION build_daily_rollup_last_closed(p_now timestamptz, p_grace interval)
RETURNS date
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_closed date := ((p_now - p_grace) AT TIME ZONE 'UTC')::date - 1;
    v_open timestamptz := build_daily_rollup_oldest_open();
BEGIN
    IF v_open IS NOT NULL THEN
        v_closed := least(v_closed, (v_open AT TIME ZONE 'UTC')::date - 1);
    END IF;
    RETURN v_closed;
END;
$$;

-- fold_build_daily_rollup: fold the days marked dirty (at most p_max_days) and up to p_max_days closed days after
-- folded_through (oldest first), and re-fold the last p_refold_days folded days (0 by default). A day is closed
-- when it ended at least p_grace ago and no transaction of this database that began before its end is still open.
-- Each folded day is replaced whole in build_daily_rollup, build_activity_daily, build_activity_hourly and (for the
-- last build_cache_daily_days() days) build_cache_daily. Returns the number of days folded; 0 when there was
-- nothing to do, and then no row was written.
CREATE OR REPLACE FUNCTION fold_build_daily_rollup(
    p_max_days integer DEFAULT 31,
    p_refold_days integer DEFAULT 0,
    p_grace interval DEFAULT interval '15 minutes'
)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_through date;
    v_closed date;
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
    -- After the lock, before any read of the days: a transaction open when the fold reads the rows is open now.
    v_closed := build_daily_rollup_last_closed(now(), p_grace);
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
    IF v_new_through IS DISTINCT FROM (SELECT s.folded_through FROM build_daily_rollup_state s WHERE s.id = 1) THEN
        UPDATE build_daily_rollup_state SET folded_through = v_new_through WHERE id = 1;
    END IF;
    RETURN coalesce(cardinality(v_days), 0);
END;
$$;

-- build_activity_daily_figures and build_activity_hourly_figures: as in 0035, with the full join of the results'
-- and the cache-served builds' groups hashed on the customer too. "customer_id IS NOT DISTINCT FROM" is no hash
-- key, so every per-customer group of a day was compared with every cache-served group of that day (644 x 265 at
-- ten times the seed for today alone: 40 of the dashboard's 90 ms for today's part). customer_id is NULL only in
-- the every-customer rows (all_customers = 1; a build always has a customer), so the nil uuid stands for it.
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
        ON s.day = r.day AND s.all_customers = r.all_customers
       AND coalesce(s.customer_id, '00000000-0000-0000-0000-000000000000'::uuid) = coalesce(r.customer_id, '00000000-0000-0000-0000-000000000000'::uuid)
    $q$ USING p_from, p_to;
END;
$$;

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
        ON s.hour = r.hour AND s.all_customers = r.all_customers
       AND coalesce(s.customer_id, '00000000-0000-0000-0000-000000000000'::uuid) = coalesce(r.customer_id, '00000000-0000-0000-0000-000000000000'::uuid)
    $q$ USING p_from, p_to;
END;
$$;

-- build_performance_summary: as in 0032; the folded days less the dirty ones are found by comparing each rollup
-- row's day with the dirty days read once (an InitPlan), not by an anti-join the planner ran as a nested loop over
-- every rollup row (the dirty table is nearly always empty, so it is estimated at one row): 137,000 rows at ten
-- times the seed, 120 -> 40 ms of the server's time. Same columns, types and rows.
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
         WHERE r.day <> ALL (ARRAY(SELECT d.day FROM build_daily_rollup_dirty d))
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

-- The dashboard's 30-day cache panel sums the build_duration_ms of today's hit entries: the registry's heap (wide
-- rows with their manifests, 85 MB at ten times the seed) was read whole for that; this index answers it alone.
CREATE INDEX IF NOT EXISTS build_cache_registry_duration_idx ON build_cache_registry (id) INCLUDE (build_duration_ms);

-- The dashboard reads the every-customer rows of the activity rollups (customer_id NULL) for a range of days or
-- hours; through the (customer_id, day) and (customer_id, hour) keys it read every customer's rows of the range.
CREATE INDEX IF NOT EXISTS build_activity_daily_all_idx ON build_activity_daily (day) WHERE customer_id IS NULL;
CREATE INDEX IF NOT EXISTS build_activity_hourly_all_idx ON build_activity_hourly (hour) WHERE customer_id IS NULL;
