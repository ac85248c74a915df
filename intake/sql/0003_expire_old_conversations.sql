-- expire_old_conversations: active conversations idle for longer than p_hours (no message since, or none since
-- they started) become 'expired'. Returns how many changed. Idempotent; safe while the system is busy: a
-- conversation whose row is locked (a message being added) is skipped, as it is not idle, and the idle test is
-- re-checked on each row once locked.
CREATE OR REPLACE FUNCTION expire_old_conversations(p_hours integer DEFAULT 24)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_cutoff timestamptz;
    v_count integer;
BEGIN
    IF p_hours IS NULL OR p_hours < 1 THEN
        RAISE EXCEPTION 'p_hours must be a positive number of hours, not %', coalesce(p_hours::text, 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
    v_cutoff := now() - make_interval(hours => p_hours);
    WITH idle AS (
        SELECT c.id
        FROM conversations c
        WHERE c.status = 'active' AND c.deleted_at IS NULL
          AND (c.last_message_at < v_cutoff OR (c.last_message_at IS NULL AND c.started_at < v_cutoff))
        FOR NO KEY UPDATE SKIP LOCKED
    )
    UPDATE conversations c
    SET status = 'expired', ended_at = now()
    FROM idle
    WHERE c.id = idle.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
