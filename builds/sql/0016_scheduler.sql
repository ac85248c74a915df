-- Scheduler v2 (issue 12, with the queue-lifecycle parts of issue 13): weighted fair share across licenses, an
-- urgent lane, sub-customers pooled under their parent's license, a per-license-month quota counter, a batch
-- claim, final cancellation, retryable failures, OCI-validated results, wake-ups on every claimable transition and
-- rescue of expired leases from the claim path. docs/sql-api.md, "Scheduling", explains the model and why.
--
-- Replaces: enqueue_build (both overloads), get_next_build_for_worker, complete_build, handle_build_timeouts,
-- release_build, retry_build, get_license_quota_usage. New: enqueue_build_v2, claim_builds, complete_build_v2,
-- rescue_expired_builds, build_queue_account (the counters' trigger function) and helpers.
--
-- Error codes: v1 functions keep P0001/P0002 for the conditions they had; new conditions (the priority_boost
-- entitlement, OCI grammar) raise their HN code everywhere; _v2 functions and claim_builds raise HN codes only.


-- The wake-up every agent can LISTEN for on channel build_queue: a small JSON object that says what became
-- claimable, {"event": ..., "build": ..., "license": ..., "priority": ...} (build and priority are absent for
-- "slot": a license that was at its concurrency limit has a free slot again).
CREATE OR REPLACE FUNCTION build_notify(p_event text, p_build_id uuid, p_license_id uuid, p_priority integer)
RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_notify('build_queue', json_strip_nulls(json_build_object(
        'event', p_event, 'build', p_build_id, 'license', p_license_id, 'priority', p_priority))::text)
$$;


-- OCI grammar (distribution reference): [domain[:port]/]path-component(/path-component)*[:tag][@sha256:<64 hex>].
CREATE OR REPLACE FUNCTION build_valid_image_reference(p_reference text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_reference IS NOT NULL AND length(p_reference) <= 500 AND p_reference ~
        ('^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?'
         '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*'
         '(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$')
$$;

CREATE OR REPLACE FUNCTION build_valid_image_digest(p_digest text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_digest IS NOT NULL AND p_digest ~ '^sha256:[0-9a-f]{64}$'
$$;


-- ---------------------------------------------------------------------------------------------------------------
-- Counters kept by the build_queue_account_* triggers (declared on the Build model).
-- ---------------------------------------------------------------------------------------------------------------

-- Apply deltas to a license's scheduler state. A claim (p_claim) advances the license's virtual time by
-- 1/scheduling_weight. A license whose queue was empty and gets work starts at the lowest virtual time of the
-- licenses with work, so time spent idle is not banked as credit. Freeing a slot of a license that was at its
-- limit, with builds waiting, sends a "slot" wake-up.
CREATE OR REPLACE FUNCTION build_state_apply(p_license_id uuid, p_queued integer, p_urgent integer, p_running integer,
                                             p_claim boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_running integer;
    v_queued integer;
    v_max integer;
BEGIN
    FOR i IN 1..2 LOOP
        UPDATE build_license_state s
        SET max_running = (SELECT l.max_concurrent_builds FROM licenses l WHERE l.id = p_license_id),
            running = s.running + p_running,
            queued = s.queued + p_queued,
            urgent_queued = s.urgent_queued + p_urgent,
            vtime = CASE
                WHEN p_claim THEN
                    s.vtime + 1.0 / (SELECT greatest(l.scheduling_weight, 1) FROM licenses l WHERE l.id = p_license_id)
                WHEN s.queued = 0 AND p_queued > 0 THEN
                    greatest(s.vtime, coalesce((SELECT min(x.vtime) FROM build_license_state x WHERE x.queued > 0),
                                               s.vtime))
                ELSE s.vtime END
        WHERE s.license_id = p_license_id
        RETURNING s.running, s.queued, s.max_running INTO v_running, v_queued, v_max;
        EXIT WHEN FOUND;
        INSERT INTO build_license_state (license_id, running, queued, urgent_queued, vtime, max_running)
        VALUES (p_license_id, 0, 0, 0,
                coalesce((SELECT min(x.vtime) FROM build_license_state x WHERE x.queued > 0), 0), 1)
        ON CONFLICT (license_id) DO NOTHING;
    END LOOP;
    IF p_running < 0 AND v_queued > 0 AND v_running - p_running >= v_max THEN
        PERFORM build_notify('slot', NULL, p_license_id, NULL);
    END IF;
END;
$$;

-- The same for one customer among those sharing a license (a parent and its sub-customers): a claim adds 1.
CREATE OR REPLACE FUNCTION build_member_apply(p_license_id uuid, p_customer_id uuid, p_queued integer,
                                              p_urgent integer, p_claim boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    FOR i IN 1..2 LOOP
        UPDATE build_member_state m
        SET queued = m.queued + p_queued,
            urgent_queued = m.urgent_queued + p_urgent,
            vtime = CASE
                WHEN p_claim THEN m.vtime + 1
                WHEN m.queued = 0 AND p_queued > 0 THEN
                    greatest(m.vtime, coalesce((SELECT min(x.vtime) FROM build_member_state x
                                                WHERE x.license_id = p_license_id AND x.queued > 0), m.vtime))
                ELSE m.vtime END
        WHERE m.license_id = p_license_id AND m.customer_id = p_customer_id;
        EXIT WHEN FOUND;
        INSERT INTO build_member_state (license_id, customer_id, queued, urgent_queued, vtime)
        VALUES (p_license_id, p_customer_id, 0, 0,
                coalesce((SELECT min(x.vtime) FROM build_member_state x
                          WHERE x.license_id = p_license_id AND x.queued > 0), 0))
        ON CONFLICT (license_id, customer_id) DO NOTHING;
    END LOOP;
END;
$$;

-- The month (UTC) a build counts in, and whether it counts: not served from the cache, not cancelled before it ran.
CREATE OR REPLACE FUNCTION build_quota_month(p_at timestamptz)
RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_trunc('month', p_at AT TIME ZONE 'UTC')::date
$$;

-- build_queue_account(old, new): what one row change does to the counters (new is NULL for a delete; inserts
-- are counted per statement by the build_queue_account_insert trigger, with the same rules). Lock order, everywhere: the quota row, then the license state, then the member state.
CREATE OR REPLACE FUNCTION build_queue_account(p_old build_queue, p_new build_queue)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    o_counted boolean := p_old.id IS NOT NULL AND NOT p_old.cache_hit
                         AND NOT (p_old.status = 'cancelled' AND p_old.started_at IS NULL);
    n_counted boolean := p_new.id IS NOT NULL AND NOT p_new.cache_hit
                         AND NOT (p_new.status = 'cancelled' AND p_new.started_at IS NULL);
    o_q integer := (p_old.id IS NOT NULL AND p_old.status = 'queued')::integer;
    o_u integer := (p_old.id IS NOT NULL AND p_old.status = 'queued' AND p_old.priority >= 9)::integer;
    o_r integer := (p_old.id IS NOT NULL AND p_old.status = 'running')::integer;
    n_q integer := (p_new.id IS NOT NULL AND p_new.status = 'queued')::integer;
    n_u integer := (p_new.id IS NOT NULL AND p_new.status = 'queued' AND p_new.priority >= 9)::integer;
    n_r integer := (p_new.id IS NOT NULL AND p_new.status = 'running')::integer;
    v_claim boolean := o_q = 1 AND n_r = 1;
BEGIN
    IF o_counted AND n_counted AND p_old.license_id = p_new.license_id
       AND build_quota_month(p_old.created_at) = build_quota_month(p_new.created_at) THEN
        NULL;
    ELSE
        IF o_counted THEN
            UPDATE build_quota_usage u SET used = u.used - 1
            WHERE u.license_id = p_old.license_id AND u.period_start = build_quota_month(p_old.created_at);
        END IF;
        IF n_counted THEN
            INSERT INTO build_quota_usage AS u (license_id, period_start, used)
            VALUES (p_new.license_id, build_quota_month(p_new.created_at), 1)
            ON CONFLICT (license_id, period_start) DO UPDATE SET used = u.used + 1;
        END IF;
    END IF;

    IF p_old.license_id IS NOT DISTINCT FROM p_new.license_id THEN
        IF n_q <> o_q OR n_u <> o_u OR n_r <> o_r THEN
            PERFORM build_state_apply(p_new.license_id, n_q - o_q, n_u - o_u, n_r - o_r, v_claim);
        END IF;
    ELSE
        IF p_old.id IS NOT NULL AND (o_q + o_u + o_r) > 0 THEN
            PERFORM build_state_apply(p_old.license_id, -o_q, -o_u, -o_r, false);
        END IF;
        IF p_new.id IS NOT NULL AND (n_q + n_u + n_r) > 0 THEN
            PERFORM build_state_apply(p_new.license_id, n_q, n_u, n_r, false);
        END IF;
    END IF;

    IF p_old.license_id IS NOT DISTINCT FROM p_new.license_id
       AND p_old.customer_id IS NOT DISTINCT FROM p_new.customer_id THEN
        IF n_q <> o_q OR n_u <> o_u THEN
            PERFORM build_member_apply(p_new.license_id, p_new.customer_id, n_q - o_q, n_u - o_u, v_claim);
        END IF;
    ELSE
        IF p_old.id IS NOT NULL AND o_q > 0 THEN
            PERFORM build_member_apply(p_old.license_id, p_old.customer_id, -o_q, -o_u, false);
        END IF;
        IF p_new.id IS NOT NULL AND n_q > 0 THEN
            PERFORM build_member_apply(p_new.license_id, p_new.customer_id, n_q, n_u, false);
        END IF;
    END IF;
END;
$$;


-- The counters as they are now (the triggers keep them from here on).
INSERT INTO build_license_state (license_id, running, queued, urgent_queued, vtime, max_running)
SELECT b.license_id,
       count(*) FILTER (WHERE b.status = 'running'),
       count(*) FILTER (WHERE b.status = 'queued'),
       count(*) FILTER (WHERE b.status = 'queued' AND b.priority >= 9),
       0,
       (SELECT l.max_concurrent_builds FROM licenses l WHERE l.id = b.license_id)
FROM build_queue b
WHERE b.status IN ('queued', 'running')
GROUP BY b.license_id;

INSERT INTO build_member_state (license_id, customer_id, queued, urgent_queued, vtime)
SELECT b.license_id, b.customer_id, count(*), count(*) FILTER (WHERE b.priority >= 9), 0
FROM build_queue b
WHERE b.status = 'queued'
GROUP BY b.license_id, b.customer_id;

INSERT INTO build_quota_usage (license_id, period_start, used)
SELECT b.license_id, build_quota_month(b.created_at), count(*)
FROM build_queue b
WHERE NOT b.cache_hit AND NOT (b.status = 'cancelled' AND b.started_at IS NULL)
GROUP BY b.license_id, build_quota_month(b.created_at);

ALTER TABLE build_license_state SET (fillfactor = 50);
ALTER TABLE build_member_state SET (fillfactor = 50);
ALTER TABLE build_quota_usage SET (fillfactor = 70);

-- When expired leases were last rescued by a claim (one row).
CREATE TABLE IF NOT EXISTS build_rescue_clock (
    id smallint PRIMARY KEY CHECK (id = 1),
    rescued_at timestamptz NOT NULL
);
INSERT INTO build_rescue_clock (id, rescued_at) VALUES (1, '-infinity') ON CONFLICT (id) DO NOTHING;


-- get_license_quota_usage: the contract of 0002_quota_usage, read from the month's counter row instead of counting.
CREATE OR REPLACE FUNCTION get_license_quota_usage(p_license_id uuid)
RETURNS TABLE(monthly_quota integer, used integer, remaining integer, period_start timestamptz, period_end timestamptz)
LANGUAGE plpgsql STABLE ROWS 1 AS $$
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
$$;


-- ---------------------------------------------------------------------------------------------------------------
-- Enqueue
-- ---------------------------------------------------------------------------------------------------------------

-- The one body of enqueue_build (v1) and enqueue_build_v2: the build's id and what happened (created, duplicate,
-- cache_hit). p_v2 picks the error codes.
CREATE OR REPLACE FUNCTION build_enqueue(p_customer_id uuid, p_manifest jsonb, p_priority integer, p_source text,
                                         p_v2 boolean, OUT build_id uuid, OUT outcome text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_bad text := CASE WHEN p_v2 THEN 'HN001' ELSE 'P0001' END;
    v_parent uuid;
    v_license_id uuid;
    v_quota integer;
    v_features jsonb;
    v_own_id uuid;
    v_own_expires timestamptz;
    v_own_starts timestamptz;
    v_hash text;
    v_entry build_cache_registry%ROWTYPE;
    v_now timestamptz := clock_timestamp();
    v_month date;
    v_used integer;
    v_reason text;
BEGIN
    IF p_customer_id IS NULL THEN
        RAISE EXCEPTION 'customer id must not be NULL' USING ERRCODE = v_bad;
    END IF;
    IF p_priority IS NULL OR p_priority NOT BETWEEN 1 AND 10 THEN
        RAISE EXCEPTION 'priority must be an integer from 1 to 10 (10 is the most urgent), got %',
            coalesce(p_priority::text, 'NULL') USING ERRCODE = v_bad;
    END IF;
    IF p_manifest IS NULL OR jsonb_typeof(p_manifest) <> 'object' THEN
        RAISE EXCEPTION 'manifest must be a JSON object, got %', coalesce(jsonb_typeof(p_manifest), 'NULL')
            USING ERRCODE = CASE WHEN p_v2 THEN 'HN002' ELSE 'P0001' END;
    END IF;
    IF p_source IS NULL OR btrim(p_source) = '' THEN
        RAISE EXCEPTION 'source must not be empty' USING ERRCODE = v_bad;
    END IF;
    SELECT c.parent_id INTO v_parent FROM customers c WHERE c.id = p_customer_id AND c.deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', p_customer_id
            USING ERRCODE = CASE WHEN p_v2 THEN 'HN101' ELSE 'P0002' END;
    END IF;

    -- The customer's own usable license; else (a sub-customer) its parent's, when that license has sub_customers.
    SELECT l.id, l.expires_at, l.starts_at INTO v_own_id, v_own_expires, v_own_starts
    FROM licenses l
    WHERE l.customer_id = p_customer_id AND l.status = 'active' AND l.deleted_at IS NULL;
    IF v_own_id IS NOT NULL AND (v_own_expires IS NULL OR v_own_expires > now()) AND v_own_starts <= v_now THEN
        SELECT l.id, l.monthly_build_quota, l.features INTO v_license_id, v_quota, v_features
        FROM licenses l WHERE l.id = v_own_id;
    ELSIF v_parent IS NOT NULL THEN
        SELECT l.id, l.monthly_build_quota, l.features INTO v_license_id, v_quota, v_features
        FROM licenses l
        WHERE l.customer_id = v_parent AND l.status = 'active' AND l.deleted_at IS NULL
          AND (l.expires_at IS NULL OR l.expires_at > now()) AND l.starts_at <= v_now
          AND coalesce((l.features ->> 'sub_customers')::boolean, false);
    END IF;
    IF v_license_id IS NULL THEN
        IF v_own_id IS NULL THEN
            SELECT l.status INTO v_reason
            FROM licenses l
            WHERE l.customer_id = p_customer_id AND l.deleted_at IS NULL
            ORDER BY l.created_at DESC
            LIMIT 1;
            IF v_reason IS NULL THEN
                RAISE EXCEPTION 'customer % has no license', p_customer_id
                    USING ERRCODE = CASE WHEN p_v2 THEN 'HN201' ELSE 'P0001' END;
            END IF;
            RAISE EXCEPTION 'customer % has no active license (its license is %)', p_customer_id, v_reason
                USING ERRCODE = CASE WHEN p_v2 THEN 'HN201' ELSE 'P0001' END;
        ELSIF v_own_expires IS NOT NULL AND v_own_expires <= now() THEN
            RAISE EXCEPTION 'license % of customer % has expired (at %)', v_own_id, p_customer_id, v_own_expires
                USING ERRCODE = CASE WHEN p_v2 THEN 'HN201' ELSE 'P0001' END;
        END IF;
        RAISE EXCEPTION 'license % of customer % has not started yet (starts at %)', v_own_id, p_customer_id,
            v_own_starts USING ERRCODE = CASE WHEN p_v2 THEN 'HN201' ELSE 'P0001' END;
    END IF;
    IF p_priority >= 9 AND NOT coalesce((v_features ->> 'priority_boost')::boolean, false) THEN
        RAISE EXCEPTION 'priority % is urgent (9-10) and needs the priority_boost entitlement, which license % lacks',
            p_priority, v_license_id USING ERRCODE = 'HN203';
    END IF;

    v_hash := manifest_hash(p_manifest);

    -- Locking the license's counter row for this month serialises the family's enqueues: the duplicate check and
    -- the quota check below see every build committed before, so neither can be raced past.
    v_month := build_quota_month(v_now);
    SELECT u.used INTO v_used
    FROM build_quota_usage u
    WHERE u.license_id = v_license_id AND u.period_start = v_month
    FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO build_quota_usage (license_id, period_start, used) VALUES (v_license_id, v_month, 0)
        ON CONFLICT (license_id, period_start) DO NOTHING;
        SELECT u.used INTO v_used
        FROM build_quota_usage u
        WHERE u.license_id = v_license_id AND u.period_start = v_month
        FOR UPDATE;
    END IF;

    -- The same manifest already queued or running for this customer: that build is the answer.
    SELECT b.id INTO build_id
    FROM build_queue b
    WHERE b.customer_id = p_customer_id AND b.manifest_hash = v_hash AND b.status IN ('queued', 'running')
    ORDER BY b.created_at
    LIMIT 1;
    IF FOUND THEN
        outcome := 'duplicate';
        RETURN;
    END IF;

    -- A usable cache entry: a build that is already done, uses no worker and no quota.
    SELECT * INTO v_entry FROM record_cache_access(v_hash, p_customer_id) LIMIT 1;
    IF FOUND THEN
        INSERT INTO build_queue (
            customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit, cache_entry_id,
            worker_id, progress, stage, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds,
            cancel_requested, image_reference, image_digest, source, created_at, finished_at
        ) VALUES (
            p_customer_id, v_license_id, p_manifest, v_hash, p_priority, 'succeeded', true, v_entry.id,
            NULL, 100, 'cached', 0, 3, 3600, 120,
            false, v_entry.image_reference, v_entry.image_digest, p_source, v_now, v_now
        )
        RETURNING id INTO build_id;
        INSERT INTO build_results (build_id, attempt, status, image_reference, image_digest, log, queue_wait_ms,
                                   duration_ms)
        VALUES (build_id, 1, 'succeeded', v_entry.image_reference, v_entry.image_digest, '', 0, 0);
        INSERT INTO build_events (build_id, event_type, from_status, to_status, message, data)
        VALUES (build_id, 'cache_hit', NULL, 'succeeded', 'served from the build cache',
                jsonb_build_object('cache_entry_id', v_entry.id, 'source', p_source));
        outcome := 'cache_hit';
        RETURN;
    END IF;

    IF v_used >= v_quota THEN
        RAISE EXCEPTION 'monthly build quota of license % is used up (% of % builds this month)',
            v_license_id, v_used, v_quota
            USING ERRCODE = CASE WHEN p_v2 THEN 'HN202' ELSE 'P0001' END;
    END IF;

    -- created_at is the clock, not the transaction start, so builds enqueued in one transaction keep their order
    -- (FIFO within a priority); not_before stays the transaction start, so they are claimable at once. The
    -- build_queue_account_insert trigger counts it in the quota row locked above and in the scheduler's state.
    INSERT INTO build_queue (
        customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit, progress, retry_count,
        max_retries, timeout_seconds, heartbeat_timeout_seconds, cancel_requested, source, created_at, not_before
    ) VALUES (
        p_customer_id, v_license_id, p_manifest, v_hash, p_priority, 'queued', false, 0, 0,
        3, 3600, 120, false, p_source, v_now, now()
    )
    RETURNING id INTO build_id;
    INSERT INTO build_events (build_id, event_type, from_status, to_status, message, data)
    VALUES (build_id, 'enqueued', NULL, 'queued', '', jsonb_build_object('priority', p_priority, 'source', p_source));
    PERFORM build_notify('enqueued', build_id, v_license_id, p_priority);
    outcome := 'created';
END;
$$;

CREATE OR REPLACE FUNCTION enqueue_build(p_customer_id uuid, p_manifest jsonb, p_priority integer, p_source text)
RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT e.build_id FROM build_enqueue(p_customer_id, p_manifest, p_priority, p_source, false) e
$$;

-- enqueue_build_v2: the build's id and its outcome: created, duplicate (that manifest is already queued or
-- running for the customer) or cache_hit (a new build, already succeeded from the cache). HN codes.
CREATE OR REPLACE FUNCTION enqueue_build_v2(p_customer_id uuid, p_manifest jsonb, p_priority integer DEFAULT 5,
                                            p_source text DEFAULT 'api')
RETURNS TABLE(build_id uuid, outcome text)
LANGUAGE sql VOLATILE AS $$
    SELECT e.build_id, e.outcome FROM build_enqueue(p_customer_id, p_manifest, p_priority, p_source, true) e
$$;


-- ---------------------------------------------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------------------------------------------

-- rescue_expired_builds: handle_build_timeouts under a documented name for any agent. The claim calls it itself
-- at most every 5 seconds (build_rescue_clock), so a fleet with no Python worker still rescues silent builds.
CREATE OR REPLACE FUNCTION rescue_expired_builds()
RETURNS integer
LANGUAGE sql VOLATILE AS $$
    SELECT handle_build_timeouts()
$$;

CREATE OR REPLACE FUNCTION build_rescue_if_due()
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM build_rescue_clock c WHERE c.id = 1 AND c.rescued_at < now() - interval '5 seconds';
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM build_rescue_clock c
    WHERE c.id = 1 AND c.rescued_at < now() - interval '5 seconds'
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;  -- another claim is rescuing right now
    END IF;
    UPDATE build_rescue_clock c SET rescued_at = now() WHERE c.id = 1;
    RETURN handle_build_timeouts();
END;
$$;

-- The one body of get_next_build_for_worker (v1, one build) and claim_builds (up to p_limit).
--
-- Each round picks a license: among those with queued builds, usable and below max_concurrent_builds, the one with
-- urgent work (priority 9-10) first, then the lowest virtual time (build_license_state.vtime; each claim adds
-- 1/scheduling_weight, so over time licenses are served in proportion to weight). Its state row is locked
-- FOR UPDATE (SKIP LOCKED: another claim holds it, try the next), and the WHERE clause is re-checked on the locked
-- row, so the limit holds exactly: this lock is the per-license serialisation. Inside the license, the member
-- (customer) with urgent work first, then the lowest virtual time; inside the member, priority then FIFO. A claim
-- that has claimed nothing and holds no lock waits for the first locked candidate rather than return nothing
-- while there is work (only then: waiting while holding a license's lock could deadlock).
CREATE OR REPLACE FUNCTION build_claim(p_worker_id text, p_limit integer, p_v2 boolean)
RETURNS SETOF build_queue
LANGUAGE plpgsql VOLATILE AS $$
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

    WHILE v_claimed < p_limit LOOP
        -- The state row alone (its copy of the cap, max_running, is refreshed by every change to the row): a scan
        -- of a few pages, no join. The license itself is checked once its row is locked.
        SELECT s.license_id, s.running INTO v_license, v_running
        FROM build_license_state s
        WHERE s.queued > 0 AND s.running < s.max_running AND s.license_id <> ALL (v_skip)
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
            WHERE s.queued > 0 AND s.running < s.max_running AND s.license_id <> ALL (v_skip)
            ORDER BY s.urgent_queued > 0 DESC, s.vtime, s.license_id
            LIMIT 1;
            IF NOT FOUND THEN
                EXIT;
            END IF;
            v_locked := true;
            SELECT s.running INTO v_running
            FROM build_license_state s
            WHERE s.license_id = v_license AND s.queued > 0 AND s.running < s.max_running
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
            WHERE m.license_id = v_license AND m.queued > 0
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
            v_skip := v_skip || v_license;  -- its builds wait for their retry backoff
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
$$;

-- get_next_build_for_worker: claim the next build in the fair order (zero or one row).
CREATE OR REPLACE FUNCTION get_next_build_for_worker(p_worker_id text)
RETURNS SETOF build_queue
LANGUAGE sql VOLATILE ROWS 1 AS $$
    SELECT * FROM build_claim(p_worker_id, 1, false)
$$;

-- claim_builds: claim up to p_limit builds (1..1000) in the fair order for one worker, in one transaction.
CREATE OR REPLACE FUNCTION claim_builds(p_worker_id text, p_limit integer)
RETURNS SETOF build_queue
LANGUAGE sql VOLATILE ROWS 10 AS $$
    SELECT * FROM build_claim(p_worker_id, p_limit, true)
$$;


-- ---------------------------------------------------------------------------------------------------------------
-- Finish
-- ---------------------------------------------------------------------------------------------------------------

-- Raise unless the build exists (the v2 codes when p_v2).
CREATE OR REPLACE FUNCTION build_require(p_build_id uuid, p_worker_id text, p_v2 boolean)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_build_id IS NULL THEN
        RAISE EXCEPTION 'build id must not be NULL' USING ERRCODE = CASE WHEN p_v2 THEN 'HN001' ELSE 'P0001' END;
    END IF;
    IF p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
        RAISE EXCEPTION 'worker id must not be empty' USING ERRCODE = CASE WHEN p_v2 THEN 'HN001' ELSE 'P0001' END;
    END IF;
    PERFORM 1 FROM build_queue b WHERE b.id = p_build_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'build % does not exist', p_build_id USING ERRCODE = CASE WHEN p_v2 THEN 'HN103' ELSE 'P0002' END;
    END IF;
END;
$$;

-- The one body of complete_build (v1) and complete_build_v2. p_result: succeeded, failed (permanent) or
-- retryable. Returns what the build became: succeeded, failed, retrying (queued again after
-- build_retry_backoff, retry_count + 1), cancelled (its cancellation was requested: never succeeded or failed,
-- never cached) or not_held (the worker does not hold it; nothing changed).
CREATE OR REPLACE FUNCTION build_complete(p_build_id uuid, p_worker_id text, p_result text, p_image_reference text,
                                          p_image_digest text, p_error text, p_v2 boolean)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_bad text := CASE WHEN p_v2 THEN 'HN001' ELSE 'P0001' END;
    v_build build_queue%ROWTYPE;
    v_old build_queue%ROWTYPE;
BEGIN
    IF p_build_id IS NULL OR p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
        PERFORM build_require(p_build_id, p_worker_id, p_v2);
    END IF;
    IF p_result IS NULL OR p_result NOT IN ('succeeded', 'failed', 'retryable') THEN
        RAISE EXCEPTION 'result must be succeeded, failed or retryable, got %', coalesce(p_result, 'NULL')
            USING ERRCODE = v_bad;
    END IF;
    IF p_result = 'succeeded' THEN
        IF coalesce(btrim(p_image_reference), '') = '' OR coalesce(btrim(p_image_digest), '') = '' THEN
            RAISE EXCEPTION 'a succeeded build needs an image reference and an image digest'
                USING ERRCODE = CASE WHEN p_v2 THEN 'HN003' ELSE 'P0001' END;
        END IF;
        IF NOT build_valid_image_reference(p_image_reference) THEN
            RAISE EXCEPTION 'image reference % does not follow the OCI grammar ([registry/]repository[:tag])',
                left(p_image_reference, 200) USING ERRCODE = 'HN003';
        END IF;
        IF NOT build_valid_image_digest(p_image_digest) THEN
            RAISE EXCEPTION 'image digest % is not sha256: followed by 64 lowercase hex digits',
                left(p_image_digest, 100) USING ERRCODE = 'HN003';
        END IF;
    END IF;

    IF p_result <> 'retryable' THEN
        -- The hot path: one statement.
        UPDATE build_queue b
        SET status = p_result, finished_at = now(), heartbeat_at = now(),
            progress = CASE WHEN p_result = 'succeeded' THEN 100 ELSE b.progress END,
            image_reference = CASE WHEN p_result = 'succeeded' THEN p_image_reference END,
            image_digest = CASE WHEN p_result = 'succeeded' THEN p_image_digest END,
            error_message = CASE WHEN p_result = 'succeeded' THEN NULL ELSE coalesce(p_error, 'failed') END
        WHERE b.id = p_build_id AND b.status = 'running' AND b.worker_id = p_worker_id AND NOT b.cancel_requested
        RETURNING b.* INTO v_build;
        IF FOUND THEN
            INSERT INTO build_results (build_id, attempt, status, worker_id, image_reference, image_digest,
                                       error_message, log, queue_wait_ms, duration_ms)
            VALUES (p_build_id,
                    coalesce((SELECT max(r.attempt) FROM build_results r WHERE r.build_id = p_build_id), 0) + 1,
                    p_result, p_worker_id, v_build.image_reference, v_build.image_digest, v_build.error_message, '',
                    greatest(0, (extract(epoch FROM v_build.started_at - v_build.not_before) * 1000)::bigint),
                    greatest(0, (extract(epoch FROM v_build.finished_at - v_build.started_at) * 1000)::bigint));
            INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
            VALUES (p_build_id, p_result, 'running', p_result, p_worker_id, coalesce(v_build.error_message, ''),
                    '{}');
            IF p_result = 'succeeded' THEN
                PERFORM register_build_in_cache(p_build_id);
            END IF;
            RETURN p_result;
        END IF;
    END IF;

    SELECT b.* INTO v_old
    FROM build_queue b
    WHERE b.id = p_build_id AND b.status = 'running' AND b.worker_id = p_worker_id
    FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM build_require(p_build_id, p_worker_id, p_v2);
        RETURN 'not_held';
    END IF;

    IF v_old.cancel_requested THEN
        -- Final cancellation: whatever the worker reports, the build ends cancelled and nothing is cached.
        UPDATE build_queue b
        SET status = 'cancelled', finished_at = now(), heartbeat_at = now(),
            error_message = coalesce(b.error_message, 'cancelled while running')
        WHERE b.id = p_build_id
        RETURNING b.* INTO v_build;
        PERFORM build_record_result(v_build, 'cancelled', p_worker_id, v_build.error_message);
        INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
        VALUES (p_build_id, 'cancelled', 'running', 'cancelled', p_worker_id, 'cancelled: the report was ignored',
                jsonb_build_object('reported', p_result));
        RETURN 'cancelled';
    END IF;

    -- A retryable failure: this attempt's result, then queued again after the backoff while retries are left.
    IF v_old.retry_count < v_old.max_retries THEN
        PERFORM build_record_result(v_old, 'failed', p_worker_id, coalesce(p_error, 'failed (retryable)'));
        UPDATE build_queue b
        SET status = 'queued', retry_count = b.retry_count + 1, not_before = now() + build_retry_backoff(b.retry_count),
            worker_id = NULL, started_at = NULL, heartbeat_at = NULL, progress = 0, stage = NULL,
            error_message = coalesce(p_error, 'failed (retryable)')
        WHERE b.id = p_build_id
        RETURNING b.* INTO v_build;
        INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
        VALUES (p_build_id, 'retry_scheduled', 'running', 'queued', p_worker_id, v_build.error_message,
                jsonb_build_object('retry_count', v_build.retry_count, 'not_before', v_build.not_before));
        PERFORM build_notify('retry', p_build_id, v_build.license_id, v_build.priority);
        RETURN 'retrying';
    END IF;
    UPDATE build_queue b
    SET status = 'failed', finished_at = now(), heartbeat_at = now(),
        error_message = coalesce(p_error, 'failed (retryable)') || ' (no retries left)'
    WHERE b.id = p_build_id
    RETURNING b.* INTO v_build;
    PERFORM build_record_result(v_build, 'failed', p_worker_id, v_build.error_message);
    INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
    VALUES (p_build_id, 'failed', 'running', 'failed', p_worker_id, v_build.error_message,
            jsonb_build_object('retries_spent', v_build.retry_count));
    RETURN 'failed';
END;
$$;

-- complete_build (v1): true when the worker held the build (it is now succeeded, failed, or cancelled if its
-- cancellation had been requested), false (nothing changed) when it did not.
CREATE OR REPLACE FUNCTION complete_build(p_build_id uuid, p_worker_id text, p_succeeded boolean,
                                          p_image_reference text DEFAULT NULL, p_image_digest text DEFAULT NULL,
                                          p_error text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_succeeded IS NULL THEN
        IF p_build_id IS NULL OR p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
            PERFORM build_require(p_build_id, p_worker_id, false);
        END IF;
        RAISE EXCEPTION 'succeeded must be true or false, not NULL' USING ERRCODE = 'P0001';
    END IF;
    RETURN build_complete(p_build_id, p_worker_id, CASE WHEN p_succeeded THEN 'succeeded' ELSE 'failed' END,
                          p_image_reference, p_image_digest, p_error, false) <> 'not_held';
END;
$$;

-- complete_build_v2: p_result succeeded | failed | retryable; returns succeeded | failed | retrying | cancelled |
-- not_held (see build_complete). HN codes.
CREATE OR REPLACE FUNCTION complete_build_v2(p_build_id uuid, p_worker_id text, p_result text,
                                             p_image_reference text DEFAULT NULL, p_image_digest text DEFAULT NULL,
                                             p_error text DEFAULT NULL)
RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT build_complete(p_build_id, p_worker_id, p_result, p_image_reference, p_image_digest, p_error, true)
$$;


-- ---------------------------------------------------------------------------------------------------------------
-- Transitions back to the queue: each sends a wake-up.
-- ---------------------------------------------------------------------------------------------------------------

-- handle_build_timeouts: as in 0004_queue, plus a "requeue" wake-up for each build queued again.
CREATE OR REPLACE FUNCTION handle_build_timeouts()
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer;
    v_ids uuid[];
    v_licenses uuid[];
    v_priorities integer[];
BEGIN
    WITH stale AS (
        SELECT b.*
        FROM build_queue b
        WHERE b.status = 'running'
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
$$;

-- release_build: as in 0004_queue, with a "release" wake-up.
CREATE OR REPLACE FUNCTION release_build(p_build_id uuid, p_worker_id text, p_reason text DEFAULT 'worker stopping')
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_build build_queue%ROWTYPE;
BEGIN
    PERFORM build_require(p_build_id, p_worker_id);
    UPDATE build_queue b
    SET status = 'queued', worker_id = NULL, started_at = NULL, heartbeat_at = NULL, progress = 0, stage = NULL,
        not_before = now()
    WHERE b.id = p_build_id AND b.status = 'running' AND b.worker_id = p_worker_id AND NOT b.cancel_requested
    RETURNING b.* INTO v_build;
    IF NOT FOUND THEN
        -- Not held, or cancellation was requested meanwhile: then the progress call cancels it, as asked.
        PERFORM update_build_progress(p_build_id, p_worker_id, 0);
        RETURN false;
    END IF;
    INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
    VALUES (p_build_id, 'released', 'running', 'queued', p_worker_id, coalesce(p_reason, ''), '{}');
    PERFORM build_notify('release', p_build_id, v_build.license_id, v_build.priority);
    RETURN true;
END;
$$;

-- retry_build: as in 0004_queue, with a "retry" wake-up.
CREATE OR REPLACE FUNCTION retry_build(p_build_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_status text;
    v_build build_queue%ROWTYPE;
BEGIN
    IF p_build_id IS NULL THEN
        RAISE EXCEPTION 'build id must not be NULL' USING ERRCODE = 'P0001';
    END IF;
    SELECT b.status INTO v_status FROM build_queue b WHERE b.id = p_build_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'build % does not exist', p_build_id USING ERRCODE = 'P0002';
    END IF;
    IF v_status NOT IN ('failed', 'timed_out', 'cancelled') THEN
        RAISE EXCEPTION 'build % is %; only failed, timed-out or cancelled builds can be retried',
            p_build_id, v_status USING ERRCODE = 'P0001';
    END IF;
    UPDATE build_queue b
    SET status = 'queued', retry_count = 0, not_before = now(), worker_id = NULL, started_at = NULL,
        heartbeat_at = NULL, finished_at = NULL, progress = 0, stage = NULL, cancel_requested = false,
        error_message = NULL, image_reference = NULL, image_digest = NULL
    WHERE b.id = p_build_id
    RETURNING b.* INTO v_build;
    INSERT INTO build_events (build_id, event_type, from_status, to_status, message, data)
    VALUES (p_build_id, 'retried', v_status, 'queued', '', '{}');
    PERFORM build_notify('retry', p_build_id, v_build.license_id, v_build.priority);
END;
$$;
