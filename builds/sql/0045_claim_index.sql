-- builds.0045_claim_index: the claim picks its license from an index in its own order, passing over licenses whose
-- queued builds all wait for their retry backoff.
--
-- 1. The claim found its license by a sequential scan of build_license_state and a top-1 sort of the eligible rows,
--    so it read every page of the table: every license's row, and every page of dead row versions that pruning and
--    autovacuum had not yet removed. Pruning needs a moment when no other backend has the page pinned, which a
--    fleet of claimers scanning the same pages rarely leaves, and a bulk update of builds (thousands of counter
--    changes in one transaction) leaves pages that vacuum frees but cannot give back. After the queue benchmark's
--    pgbench rounds the claim read 2,902 buffers against 90.6 on a fresh database.
--
--    The migration's Django operations add two stored generated columns and a partial index on them:
--      claimable = queued > 0 AND NOT paused AND running < max_running   (the old WHERE clause)
--      urgent    = urgent_queued > 0                                      (the old first sort key)
--      build_license_state_claim_idx (urgent DESC, vtime, license_id) WHERE claimable
--    and the claim below reads that index in the old order: a pick is the first entry no other claim has locked.
--    The index is on the generated columns rather than on the counters, so an update stays HOT unless it changes
--    vtime (a claim) or flips a flag (a license reaching or leaving its cap, its first or last queued build, a
--    pause): a completion below the cap, and an enqueue or a cancel that leaves work queued, write no index entry.
--    A claim writes one entry here and one in the primary key; its row's old entry becomes dead and lies ahead of
--    every live one, and the next pick that finds it dead to every snapshot marks it so later picks skip it in the
--    index page. While a transaction anywhere in the cluster holds back that horizon (a long load, a dump), each
--    pick visits every entry the claims since have left, one heap page each, as the queue's own partial indexes do.
--
-- 2. A license whose queued builds all wait for their retry backoff never advances its virtual time, so it stays
--    first in the fair order; the claim locked it, looked for a build, found none, and picked again, on every call
--    until the backoff ended (30 s for a first retry). At ten times the seed the claim's first rescue requeues the
--    seed's fifteen lost running builds, and every one of the next thousand claims picked 7.9 times (404 of its 538
--    buffers). The pick now passes over such a license with one probe of its queued builds: a scalar sub-select, so
--    it runs per candidate in index order and never becomes a join.
--
-- Semantics are unchanged: the same licenses are eligible, in the same order; the probe drops only licenses the
-- claim would have skipped (no queued build past its backoff), and the cap, usability and pauses are re-checked
-- under the row lock as before. Adding the columns rewrites the table (one row per license), compacting it.

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
        -- The state row (its copy of the cap, max_running, is refreshed by every change to the row), read in the
        -- claim's order from build_license_state_claim_idx, which holds only the claimable licenses: the first entry
        -- that no other claim has locked, whatever the number of licenses or of dead row versions. A license whose
        -- queued builds all wait for their retry backoff is passed over here, by one probe of its queued builds
        -- (a scalar sub-select, so it runs per candidate in index order and never becomes a join): it never
        -- advances its virtual time, so it stays first in the order, and the claim would otherwise lock it, look
        -- for its build and pick again, on every call until the backoff ends. The license itself is checked once
        -- its row is locked.
        SELECT s.license_id, s.running INTO v_license, v_running
        FROM build_license_state s
        WHERE s.claimable AND s.license_id <> ALL (v_skip)
          AND (SELECT true FROM build_queue b
               WHERE b.license_id = s.license_id AND b.status = 'queued' AND b.not_before <= statement_timestamp()
               LIMIT 1)
        ORDER BY s.urgent DESC, s.vtime, s.license_id
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
            WHERE s.claimable AND s.license_id <> ALL (v_skip)
              AND (SELECT true FROM build_queue b
                   WHERE b.license_id = s.license_id AND b.status = 'queued'
                     AND b.not_before <= statement_timestamp()
                   LIMIT 1)
            ORDER BY s.urgent DESC, s.vtime, s.license_id
            LIMIT 1;
            IF NOT FOUND THEN
                EXIT;
            END IF;
            v_locked := true;
            SELECT s.running INTO v_running
            FROM build_license_state s
            WHERE s.license_id = v_license AND s.claimable
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
