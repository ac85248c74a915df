-- builds.0045_claim_index, backwards: the claim of builds.0029_claim_pauses (a scan and sort of the whole state
-- table). The migration's Django operations drop the index and the generated columns after this runs.

CREATE OR REPLACE FUNCTION build_claim(p_worker_id text, p_limit integer, p_v2 boolean)
 RETURNS SETOF build_queue
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_license uuid;
    v_claimed integer := 0;
    v_skip uuid[] := '{}';
    v_locked boolean := false;
    v_running integer;
    v_max integer;
    v_usable boolean;
    v_member record;
    v_build_id uuid;
    v_build build_queue%ROWTYPE;
BEGIN
    IF p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
        RAISE EXCEPTION 'worker id must not be empty' USING ERRCODE = CASE WHEN p_v2 THEN 'HN001' ELSE 'P0001' END;
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit must be an integer from 1 to 1000, got %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = CASE WHEN p_v2 THEN 'HN001' ELSE 'P0001' END;
    END IF;
    IF build_rescue_if_due() > 0 THEN
        v_locked := true;  -- the rescue locked license states
    END IF;
    -- Pause and drain: a global pause claims nothing (one probe of a table that is empty or holds a few rows).
    IF EXISTS (SELECT 1 FROM build_claim_pauses p WHERE p.scope = 'global' AND p.target_id IS NULL) THEN
        RETURN;
    END IF;

    WHILE v_claimed < p_limit LOOP
        -- The state row alone (its copy of the cap, max_running, is refreshed by every change to the row): a scan
        -- of a few pages, no join. The license itself is checked once its row is locked.
        SELECT s.license_id, s.running INTO v_license, v_running
        FROM build_license_state s
        WHERE s.queued > 0 AND s.running < s.max_running AND NOT s.paused AND s.license_id <> ALL (v_skip)
        ORDER BY s.urgent_queued > 0 DESC, s.vtime, s.license_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        IF v_license IS NULL THEN
            -- Every candidate is locked by another claim. Wait for the first one, but only while holding no lock
            -- at all (nothing claimed, no earlier write in this transaction): a claim that waits while holding a
            -- license's lock could close a cycle with another.
            IF v_locked OR txid_current_if_assigned() IS NOT NULL THEN
                EXIT;
            END IF;
            SELECT s.license_id INTO v_license
            FROM build_license_state s
            WHERE s.queued > 0 AND s.running < s.max_running AND NOT s.paused AND s.license_id <> ALL (v_skip)
            ORDER BY s.urgent_queued > 0 DESC, s.vtime, s.license_id
            LIMIT 1;
            IF NOT FOUND THEN
                EXIT;
            END IF;
            v_locked := true;
            SELECT s.running INTO v_running
            FROM build_license_state s
            WHERE s.license_id = v_license AND s.queued > 0 AND s.running < s.max_running AND NOT s.paused
            FOR UPDATE;
            IF NOT FOUND THEN
                v_skip := v_skip || v_license;  -- full (or empty) by the time its lock was ours
                CONTINUE;
            END IF;
        END IF;
        v_locked := true;
        -- Under the lock, against the license itself: usable, and below its cap (which may have just changed).
        SELECT l.max_concurrent_builds,
               l.status = 'active' AND l.deleted_at IS NULL AND (l.expires_at IS NULL OR l.expires_at > now())
        INTO v_max, v_usable
        FROM licenses l
        WHERE l.id = v_license;
        IF NOT coalesce(v_usable, false) OR v_running >= v_max THEN
            v_skip := v_skip || v_license;
            CONTINUE;
        END IF;

        v_build_id := NULL;
        FOR v_member IN
            SELECT m.customer_id
            FROM build_member_state m
            WHERE m.license_id = v_license AND m.queued > 0 AND NOT m.paused
            ORDER BY m.urgent_queued > 0 DESC, m.vtime, m.customer_id
        LOOP
            SELECT b.id INTO v_build_id
            FROM build_queue b
            WHERE b.license_id = v_license AND b.customer_id = v_member.customer_id AND b.status = 'queued'
              AND b.not_before <= statement_timestamp()
            ORDER BY b.priority DESC, b.created_at, b.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED;
            EXIT WHEN v_build_id IS NOT NULL;
        END LOOP;
        IF v_build_id IS NULL THEN
            v_skip := v_skip || v_license;  -- its builds wait for their retry backoff, or their customers are paused
            CONTINUE;
        END IF;

        UPDATE build_queue b
        SET status = 'running', worker_id = p_worker_id, started_at = now(), heartbeat_at = now(),
            progress = 0, stage = NULL, cancel_requested = false
        WHERE b.id = v_build_id
        RETURNING b.* INTO v_build;
        INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
        VALUES (v_build.id, 'claimed', 'queued', 'running', p_worker_id, '',
                jsonb_build_object('attempt', v_build.retry_count + 1));
        v_claimed := v_claimed + 1;
        RETURN NEXT v_build;
    END LOOP;
END;
$function$;
