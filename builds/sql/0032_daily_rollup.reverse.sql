-- Back to 0012_views_perf.sql's build_performance_summary over the whole queue; the rollup tables and the queue's
-- triggers go with the migration's model operations (the triggers before this file, the tables after it).
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

DROP FUNCTION IF EXISTS fold_build_daily_rollup(integer, integer, interval);
DROP FUNCTION IF EXISTS build_daily_rollup_reset();
DROP FUNCTION IF EXISTS build_daily_rollup_mark();
DROP FUNCTION IF EXISTS build_daily_figures(timestamptz, timestamptz);
DROP INDEX IF EXISTS build_queue_finished_at_idx;
