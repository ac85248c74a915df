-- Pause and drain (issue 16): operators pause claiming globally, for one customer or for one license, and resume.
-- Paused work stays queued and is never claimed; running builds finish normally (drain). docs/sql-api.md, "Pause
-- and drain", explains the model.
--
-- build_claim_pauses (the ClaimPause model) holds one row per pause; pause_claims/resume_claims copy a customer's
-- or license's pause onto the scheduler's state rows (build_member_state.paused, build_license_state.paused; a
-- BEFORE INSERT trigger sets the flag on rows created later), so the claim's existing scans skip paused work with
-- no extra query. A global pause costs the claim one index probe of build_claim_pauses.
--
-- Replaces: build_claim (the body behind claim_builds and get_next_build_for_worker). New: pause_claims,
-- resume_claims. Errors: HN001 bad scope/target/reason, HN101 unknown customer, HN102 unknown license.


-- Pause claiming. p_scope: 'global' (p_target NULL), 'customer' or 'license' (p_target the id). Pausing what is
-- already paused changes nothing (the first pause's time, author and reason stay). Returns the pause's row.
CREATE OR REPLACE FUNCTION pause_claims(p_scope text, p_target uuid DEFAULT NULL, p_reason text DEFAULT NULL,
                                        p_paused_by text DEFAULT NULL)
RETURNS build_claim_pauses
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_pause build_claim_pauses%ROWTYPE;
BEGIN
    IF p_scope IS NULL OR p_scope NOT IN ('global', 'customer', 'license') THEN
        RAISE EXCEPTION 'scope must be global, customer or license, got %', coalesce(p_scope, 'NULL')
            USING ERRCODE = 'HN001';
    END IF;
    IF p_scope = 'global' AND p_target IS NOT NULL THEN
        RAISE EXCEPTION 'a global pause takes no target' USING ERRCODE = 'HN001';
    END IF;
    IF p_scope <> 'global' AND p_target IS NULL THEN
        RAISE EXCEPTION 'a % pause needs the %''s id', p_scope, p_scope USING ERRCODE = 'HN001';
    END IF;
    IF length(coalesce(p_reason, '')) > 500 THEN
        RAISE EXCEPTION 'reason must be at most 500 characters' USING ERRCODE = 'HN001';
    END IF;
    IF length(coalesce(p_paused_by, '')) > 150 THEN
        RAISE EXCEPTION 'paused_by must be at most 150 characters' USING ERRCODE = 'HN001';
    END IF;
    IF p_scope = 'customer' AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = p_target) THEN
        RAISE EXCEPTION 'customer % does not exist', p_target USING ERRCODE = 'HN101';
    END IF;
    IF p_scope = 'license' AND NOT EXISTS (SELECT 1 FROM licenses l WHERE l.id = p_target) THEN
        RAISE EXCEPTION 'license % does not exist', p_target USING ERRCODE = 'HN102';
    END IF;

    INSERT INTO build_claim_pauses (scope, target_id, paused_at, paused_by, reason)
    VALUES (p_scope, p_target, now(), coalesce(p_paused_by, ''), coalesce(p_reason, ''))
    ON CONFLICT (scope, target_id) DO NOTHING
    RETURNING * INTO v_pause;
    IF NOT FOUND THEN
        SELECT * INTO v_pause FROM build_claim_pauses p
        WHERE p.scope = p_scope AND p.target_id IS NOT DISTINCT FROM p_target;
        RETURN v_pause;
    END IF;

    -- Lock order as everywhere: license state, then member state.
    IF p_scope = 'license' THEN
        INSERT INTO build_license_state (license_id, running, queued, urgent_queued, vtime, max_running, paused)
        VALUES (p_target, 0, 0, 0, 0, 1, true)
        ON CONFLICT (license_id) DO UPDATE SET paused = true;
    ELSIF p_scope = 'customer' THEN
        UPDATE build_member_state m SET paused = true WHERE m.customer_id = p_target AND NOT m.paused;
    END IF;
    RETURN v_pause;
END;
$$;

-- Resume claiming: remove the pause and wake idle workers (a "resume" NOTIFY on build_queue, with the license for
-- a license's pause). Returns whether there was a pause to remove.
CREATE OR REPLACE FUNCTION resume_claims(p_scope text, p_target uuid DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_scope IS NULL OR p_scope NOT IN ('global', 'customer', 'license') THEN
        RAISE EXCEPTION 'scope must be global, customer or license, got %', coalesce(p_scope, 'NULL')
            USING ERRCODE = 'HN001';
    END IF;
    IF p_scope = 'global' AND p_target IS NOT NULL THEN
        RAISE EXCEPTION 'a global pause takes no target' USING ERRCODE = 'HN001';
    END IF;
    IF p_scope <> 'global' AND p_target IS NULL THEN
        RAISE EXCEPTION 'a % pause needs the %''s id', p_scope, p_scope USING ERRCODE = 'HN001';
    END IF;
    IF p_scope = 'customer' AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = p_target) THEN
        RAISE EXCEPTION 'customer % does not exist', p_target USING ERRCODE = 'HN101';
    END IF;
    IF p_scope = 'license' AND NOT EXISTS (SELECT 1 FROM licenses l WHERE l.id = p_target) THEN
        RAISE EXCEPTION 'license % does not exist', p_target USING ERRCODE = 'HN102';
    END IF;

    DELETE FROM build_claim_pauses p WHERE p.scope = p_scope AND p.target_id IS NOT DISTINCT FROM p_target;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_scope = 'license' THEN
        UPDATE build_license_state s SET paused = false WHERE s.license_id = p_target AND s.paused;
    ELSIF p_scope = 'customer' THEN
        UPDATE build_member_state m SET paused = false WHERE m.customer_id = p_target AND m.paused;
    END IF;
    PERFORM build_notify('resume', NULL, CASE WHEN p_scope = 'license' THEN p_target END, NULL);
    RETURN true;
END;
$$;


-- The claim (claim_builds, get_next_build_for_worker): as in 0016, plus the global pause check after the rescue
-- and "NOT paused" in the scans of build_license_state and build_member_state. A license whose only queued work
-- belongs to paused customers is skipped for this claim like one whose builds wait for their backoff.
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
