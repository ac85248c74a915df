-- expire_licenses(): usable-looking licenses (status 'active', not deleted) whose expires_at has come become
-- 'expired'. A license is usable while expires_at > now(), so one is expired exactly at expires_at. Returns how
-- many it changed; idempotent. Rows locked by a concurrent transaction are skipped (SKIP LOCKED) and taken by the
-- next run, so it never waits behind, or deadlocks with, the build queue.
CREATE OR REPLACE FUNCTION expire_licenses()
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_changed integer;
BEGIN
    WITH due AS (
        SELECT l.id
        FROM licenses l
        WHERE l.status = 'active'
          AND l.deleted_at IS NULL
          AND l.expires_at IS NOT NULL
          AND l.expires_at <= now()
        FOR UPDATE SKIP LOCKED
    )
    UPDATE licenses l
    SET status = 'expired'
    FROM due
    WHERE l.id = due.id;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION expire_licenses() IS
    'Active licenses whose expires_at has come become expired; returns how many changed. Idempotent.';

-- revoke_expired_credentials(p_grace_days): active credentials past expires_at become 'expired'; credentials
-- expired for longer than the grace period become 'revoked' (with revoked_at). Returns how many rows changed;
-- idempotent; skips rows locked by a concurrent transaction.
CREATE OR REPLACE FUNCTION revoke_expired_credentials(p_grace_days integer DEFAULT 7)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_cutoff timestamptz;
    v_changed integer;
BEGIN
    IF p_grace_days IS NULL OR p_grace_days < 0 THEN
        RAISE EXCEPTION 'grace period must be zero or more days, not %', coalesce(p_grace_days::text, 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
    v_cutoff := now() - make_interval(days => p_grace_days);
    WITH due AS (
        SELECT c.id
        FROM registry_credentials c
        WHERE c.status IN ('active', 'expired')
          AND c.expires_at IS NOT NULL
          AND c.expires_at <= now()
          AND (c.status = 'active' OR c.expires_at < v_cutoff)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE registry_credentials c
    SET status = CASE WHEN c.expires_at < v_cutoff THEN 'revoked' ELSE 'expired' END,
        revoked_at = CASE WHEN c.expires_at < v_cutoff THEN now() ELSE c.revoked_at END
    FROM due
    WHERE c.id = due.id;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION revoke_expired_credentials(integer) IS
    'Credentials past expires_at become expired, and revoked once expired for longer than p_grace_days; '
    'returns how many changed. Idempotent.';
