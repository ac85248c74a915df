-- get_license_quota_usage: a license's monthly build quota, what is used of it, and the period (calendar month,
-- UTC). A build counts unless it was served from the cache or cancelled before it ran.
CREATE OR REPLACE FUNCTION get_license_quota_usage(p_license_id uuid)
RETURNS TABLE(monthly_quota integer, used integer, remaining integer, period_start timestamptz, period_end timestamptz)
LANGUAGE plpgsql STABLE AS $$
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
    SELECT count(*)::integer INTO v_used
    FROM build_queue b
    WHERE b.license_id = p_license_id
      AND b.created_at >= v_start AND b.created_at < v_end
      AND NOT b.cache_hit
      AND NOT (b.status = 'cancelled' AND b.started_at IS NULL);
    RETURN QUERY SELECT v_quota, v_used, greatest(v_quota - v_used, 0), v_start, v_end;
END;
$$;
