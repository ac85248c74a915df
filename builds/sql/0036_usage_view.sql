-- builds.0036_usage_view: customer_build_usage reads counters and the current month only.
--
-- At ten times the seed's volume the view took 870 ms (131x its six-month time): for each of 1,000 licenses it
-- called the PL/pgSQL get_license_quota_usage (a function call the planner cannot see into) and counted the
-- month's cache hits by visiting every build of the license's month in the heap. Now:
--   * license_quota_usage_row(license) is a plain SQL function over licenses and build_quota_usage, which the
--     planner inlines into the view as a join; get_license_quota_usage keeps its contract (P0002 for an unknown
--     license) and returns that same row, so the quota arithmetic is written once;
--   * the month's cache hits are counted in build_queue_cache_hit_idx (license, created_at WHERE cache_hit), an
--     index of cache-hit builds only: a claim or a completion never writes it (their builds are not cache hits).
-- The view's columns, types and values are unchanged.

CREATE OR REPLACE FUNCTION public.license_quota_usage_row(p_license_id uuid)
 RETURNS TABLE(monthly_quota integer, used integer, remaining integer, period_start timestamp with time zone,
               period_end timestamp with time zone)
 LANGUAGE sql
 STABLE
AS $function$
    SELECT l.monthly_build_quota::integer,
           coalesce(u.used, 0)::integer,
           greatest(l.monthly_build_quota - coalesce(u.used, 0), 0)::integer,
           date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
    FROM licenses l
    LEFT JOIN build_quota_usage u ON u.license_id = l.id AND u.period_start = build_quota_month(now())
    WHERE l.id = p_license_id
$function$;

COMMENT ON FUNCTION public.license_quota_usage_row(uuid) IS
    'This calendar month''s (UTC) quota row of one license: no row for an unknown license. Inlined by the planner '
    'where it is joined (customer_build_usage); get_license_quota_usage is the public call, which raises P0002.';

CREATE OR REPLACE FUNCTION public.get_license_quota_usage(p_license_id uuid)
 RETURNS TABLE(monthly_quota integer, used integer, remaining integer, period_start timestamp with time zone,
               period_end timestamp with time zone)
 LANGUAGE plpgsql
 STABLE ROWS 1
AS $function$
BEGIN
    RETURN QUERY SELECT * FROM license_quota_usage_row(p_license_id);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'license % does not exist', p_license_id USING ERRCODE = 'P0002';
    END IF;
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
     CROSS JOIN LATERAL license_quota_usage_row(l.id) q(monthly_quota, used, remaining, period_start, period_end)
  WHERE c.deleted_at IS NULL;
