-- Back to 0004_queue.sql's build_performance_summary, then drop its index; the default row estimate again.
ALTER FUNCTION get_license_quota_usage(uuid) ROWS 1000;

CREATE OR REPLACE VIEW build_performance_summary AS
SELECT b.customer_id,
       c.name AS customer_name,
       (b.finished_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS total_builds,
       count(*) FILTER (WHERE b.status = 'succeeded' AND NOT b.cache_hit) AS succeeded,
       count(*) FILTER (WHERE b.status = 'failed') AS failed,
       count(*) FILTER (WHERE b.status = 'timed_out') AS timed_out,
       count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE b.cache_hit) AS cache_hits,
       round(
           (count(*) FILTER (WHERE b.status = 'succeeded' AND NOT b.cache_hit))::numeric
           / nullif(count(*) FILTER (WHERE b.status IN ('succeeded', 'failed', 'timed_out') AND NOT b.cache_hit), 0),
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
JOIN customers c ON c.id = b.customer_id
WHERE b.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND b.finished_at IS NOT NULL
GROUP BY b.customer_id, c.name, (b.finished_at AT TIME ZONE 'UTC')::date;

DROP INDEX IF EXISTS build_queue_finished_day_idx;
