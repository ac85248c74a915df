-- builds.0030_running_index: the rescue states the running index's predicate in full.
--
-- build_queue_running_idx is partial on (status = 'running' AND started_at IS NOT NULL); started_at is never NULL
-- for a running build (build_queue_running_has_worker), so nothing changes but the plan. The by-id statements of
-- the hot path (build_complete, update_build_progress, release_build) do not state it, so they keep the primary
-- key (see the migration's docstring).

CREATE OR REPLACE FUNCTION public.handle_build_timeouts()
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_count integer;
    v_ids uuid[];
    v_licenses uuid[];
    v_priorities integer[];
BEGIN
    WITH stale AS (
        SELECT b.*
        FROM build_queue b
        WHERE b.status = 'running' AND b.started_at IS NOT NULL  -- the running index's predicate
          AND (b.heartbeat_at < now() - make_interval(secs => b.heartbeat_timeout_seconds)
               OR b.started_at < now() - make_interval(secs => b.timeout_seconds))
        FOR UPDATE SKIP LOCKED
    ),
    decided AS (
        SELECT s.*,
               CASE WHEN s.cancel_requested THEN 'cancelled'
                    WHEN s.retry_count < s.max_retries THEN 'queued'
                    ELSE 'timed_out' END AS next_status,
               CASE WHEN s.heartbeat_at < now() - make_interval(secs => s.heartbeat_timeout_seconds)
                    THEN format('no heartbeat for %s s', s.heartbeat_timeout_seconds)
                    ELSE format('ran longer than %s s', s.timeout_seconds) END AS reason
        FROM stale s
    ),
    changed AS (
        UPDATE build_queue b
        SET status = d.next_status,
            retry_count = CASE WHEN d.next_status = 'queued' THEN b.retry_count + 1 ELSE b.retry_count END,
            not_before = CASE WHEN d.next_status = 'queued' THEN now() + build_retry_backoff(b.retry_count)
                              ELSE b.not_before END,
            worker_id = CASE WHEN d.next_status = 'queued' THEN NULL ELSE b.worker_id END,
            started_at = CASE WHEN d.next_status = 'queued' THEN NULL ELSE b.started_at END,
            heartbeat_at = CASE WHEN d.next_status = 'queued' THEN NULL ELSE b.heartbeat_at END,
            progress = CASE WHEN d.next_status = 'queued' THEN 0 ELSE b.progress END,
            stage = CASE WHEN d.next_status = 'queued' THEN NULL ELSE b.stage END,
            finished_at = CASE WHEN d.next_status = 'queued' THEN NULL ELSE now() END,
            error_message = CASE WHEN d.next_status = 'queued' THEN b.error_message ELSE d.reason END
        FROM decided d
        WHERE b.id = d.id
        RETURNING b.id, b.not_before, b.retry_count, b.status, b.license_id, b.priority
    ),
    results AS (
        INSERT INTO build_results (build_id, attempt, status, worker_id, error_message, log, queue_wait_ms,
                                   duration_ms)
        SELECT d.id,
               coalesce((SELECT max(r.attempt) FROM build_results r WHERE r.build_id = d.id), 0) + 1,
               CASE WHEN d.next_status = 'cancelled' THEN 'cancelled' ELSE 'timed_out' END,
               d.worker_id, d.reason, '',
               greatest(0, (extract(epoch FROM d.started_at - d.not_before) * 1000)::bigint),
               greatest(0, (extract(epoch FROM now() - d.started_at) * 1000)::bigint)
        FROM decided d
    ),
    events AS (
        INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
        SELECT d.id,
               CASE d.next_status WHEN 'queued' THEN 'requeued' ELSE d.next_status END,
               'running', d.next_status, d.worker_id, d.reason,
               CASE WHEN d.next_status = 'queued'
                    THEN jsonb_build_object('retry_count', c.retry_count, 'not_before', c.not_before)
                    ELSE '{}'::jsonb END
        FROM decided d JOIN changed c ON c.id = d.id
    )
    SELECT count(*),
           coalesce(array_agg(c.id) FILTER (WHERE c.status = 'queued'), '{}'),
           array_agg(c.license_id) FILTER (WHERE c.status = 'queued'),
           array_agg(c.priority) FILTER (WHERE c.status = 'queued')
    INTO v_count, v_ids, v_licenses, v_priorities
    FROM changed c;
    FOR i IN 1..cardinality(v_ids) LOOP
        PERFORM build_notify('requeue', v_ids[i], v_licenses[i], v_priorities[i]);
    END LOOP;
    RETURN v_count;
END;
$function$;

-- The operators' usage view counts a license's running builds through the same index.
CREATE OR REPLACE VIEW public.customer_build_usage AS
 SELECT c.id AS customer_id,
    c.name AS customer_name,
    l.id AS license_id,
    l.tier,
    l.is_trial,
    l.expires_at,
    q.monthly_quota,
    q.used AS builds_this_month,
    q.remaining AS builds_remaining,
    q.period_start,
    q.period_end,
    l.max_concurrent_builds,
    ( SELECT count(*) AS count
           FROM build_queue b
          WHERE b.license_id = l.id AND b.status::text = 'running'::text AND b.started_at IS NOT NULL) AS running_builds,
    ( SELECT count(*) AS count
           FROM build_queue b
          WHERE b.customer_id = c.id AND b.status::text = 'queued'::text) AS queued_builds,
    ( SELECT count(*) AS count
           FROM build_queue b
          WHERE b.license_id = l.id AND b.cache_hit AND b.created_at >= q.period_start) AS cache_hits_this_month,
    ( SELECT max(b.created_at) AS max
           FROM build_queue b
          WHERE b.customer_id = c.id) AS last_build_at
   FROM customers c
     JOIN licenses l ON l.customer_id = c.id AND l.status::text = 'active'::text AND l.deleted_at IS NULL
     CROSS JOIN LATERAL get_license_quota_usage(l.id) q(monthly_quota, used, remaining, period_start, period_end)
  WHERE c.deleted_at IS NULL;
