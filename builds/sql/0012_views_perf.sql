-- View performance at the seed's six-month volume (issue 7: every view under 100 ms; docs/performance.md "Scale").
--
-- build_performance_summary, same columns and figures as 0004_queue.sql: it groups by (customer, day) first and
-- joins the customer's name afterwards, so the groups come in the order of build_queue_finished_day_idx (an
-- index-only scan) instead of sorting every finished build by (customer, name, day) - a sort that spilled to
-- disk at the default work_mem. What remains is the percentiles' own small per-group sorts.
--
-- customer_build_usage: get_license_quota_usage returns one row, but as a set-returning function it was planned
-- as 1,000, which made the view's estimated cost ~57 million; on servers with JIT (PostgreSQL 15 here) that
-- cost bought ~240 ms of JIT compilation for a 10 ms query. Telling the planner the truth fixes the estimate.

CREATE INDEX IF NOT EXISTS build_queue_finished_day_idx
    ON build_queue (customer_id, ((finished_at AT TIME ZONE 'UTC')::date))
    INCLUDE (status, cache_hit, created_at, started_at, finished_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND finished_at IS NOT NULL;

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
    SELECT b.customer_id,
           (b.finished_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS total_builds,
           count(*) FILTER (WHERE b.status = 'succeeded' AND NOT b.cache_hit) AS succeeded,
           count(*) FILTER (WHERE b.status = 'failed') AS failed,
           count(*) FILTER (WHERE b.status = 'timed_out') AS timed_out,
           count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE b.cache_hit) AS cache_hits,
           round(
               (count(*) FILTER (WHERE b.status = 'succeeded' AND NOT b.cache_hit))::numeric
               / nullif(count(*) FILTER (WHERE b.status IN ('succeeded', 'failed', 'timed_out') AND NOT b.cache_hit),
                        0),
               4
           ) AS success_rate,
           round(avg(extract(epoch FROM b.finished_at - b.started_at)) FILTER (WHERE b.started_at IS NOT NULL), 3)
               AS avg_duration_seconds,
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.finished_at - b.started_at))
               FILTER (WHERE b.started_at IS NOT NULL))::numeric, 3) AS p50_duration_seconds,
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM b.finished_at - b.started_at))
               FILTER (WHERE b.started_at IS NOT NULL))::numeric, 3) AS p95_duration_seconds,
           round(avg(extract(epoch FROM b.started_at - b.created_at)) FILTER (WHERE b.started_at IS NOT NULL), 3)
               AS avg_queue_wait_seconds,
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM b.started_at - b.created_at))
               FILTER (WHERE b.started_at IS NOT NULL))::numeric, 3) AS p95_queue_wait_seconds
    FROM build_queue b
    WHERE b.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND b.finished_at IS NOT NULL
    GROUP BY b.customer_id, (b.finished_at AT TIME ZONE 'UTC')::date
) g
JOIN customers c ON c.id = g.customer_id;

ALTER FUNCTION get_license_quota_usage(uuid) ROWS 1;
