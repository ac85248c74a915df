-- Reverse of 0036_usage_view.sql: the view and get_license_quota_usage as they were before it (the
-- migration's model operations then drop build_queue_cache_hit_idx).

CREATE OR REPLACE FUNCTION public.get_license_quota_usage(p_license_id uuid)
 RETURNS TABLE(monthly_quota integer, used integer, remaining integer, period_start timestamp with time zone, period_end timestamp with time zone)
 LANGUAGE plpgsql
 STABLE ROWS 1
AS $function$
DECLARE
    v_quota integer;
    v_start timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    v_end timestamptz := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    v_used integer;
BEGIN
    SELECT l.monthly_build_quota INTO v_quota FROM licenses l WHERE l.id = p_license_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'license % does not exist', p_license_id USING ERRCODE = 'P0002';
    END IF;
    SELECT coalesce(u.used, 0) INTO v_used
    FROM build_quota_usage u
    WHERE u.license_id = p_license_id AND u.period_start = build_quota_month(now());
    v_used := coalesce(v_used, 0);
    RETURN QUERY SELECT v_quota, v_used, greatest(v_quota - v_used, 0), v_start, v_end;
END;
$function$;

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

DROP FUNCTION public.license_quota_usage_row(uuid);
