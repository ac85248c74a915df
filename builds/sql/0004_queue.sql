-- The build queue's SQL API v1 (DESIGN.md, docs/sql-api.md): enqueue_build, get_next_build_for_worker,
-- update_build_progress, complete_build, handle_build_timeouts; the operator functions cancel_build, retry_build,
-- reprioritize_build and release_build; the views active_builds, build_performance_summary, customer_build_usage.
--
-- Errors use SQLSTATE P0001 (bad input or a rule) and P0002 (no such row), with a message naming the reason.
-- Every status transition writes one build_events row in the same transaction.

-- Retry backoff after a heartbeat timeout: 30 s, 60 s, 120 s, ... (doubling per retry spent), at most 1 hour.
CREATE OR REPLACE FUNCTION build_retry_backoff(p_retry_count integer)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(interval '30 seconds' * power(2, greatest(p_retry_count, 0)), interval '1 hour')
$$;


-- The advisory-lock key that serialises claims for one license (the class id keeps it apart from other uses).
CREATE OR REPLACE FUNCTION build_license_lock_key(p_license_id uuid)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('build_queue.license:' || p_license_id::text, 0)
$$;


-- enqueue_build with the source recorded (api, intake, admin, ...); the three-argument form is the contract.
CREATE OR REPLACE FUNCTION enqueue_build(p_customer_id uuid, p_manifest jsonb, p_priority integer, p_source text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_license licenses%ROWTYPE;
    v_hash text;
    v_build_id uuid;
    v_entry build_cache_registry%ROWTYPE;
    v_usage record;
    v_reason text;
BEGIN
    IF p_customer_id IS NULL THEN
        RAISE EXCEPTION 'customer id must not be NULL' USING ERRCODE = 'P0001';
    END IF;
    IF p_priority IS NULL OR p_priority NOT BETWEEN 1 AND 10 THEN
        RAISE EXCEPTION 'priority must be an integer from 1 to 10 (10 is the most urgent), got %',
            coalesce(p_priority::text, 'NULL') USING ERRCODE = 'P0001';
    END IF;
    IF p_manifest IS NULL OR jsonb_typeof(p_manifest) <> 'object' THEN
        RAISE EXCEPTION 'manifest must be a JSON object, got %', coalesce(jsonb_typeof(p_manifest), 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
    IF p_source IS NULL OR btrim(p_source) = '' THEN
        RAISE EXCEPTION 'source must not be empty' USING ERRCODE = 'P0001';
    END IF;
    PERFORM 1 FROM customers c WHERE c.id = p_customer_id AND c.deleted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % does not exist', p_customer_id USING ERRCODE = 'P0002';
    END IF;

    -- Locking the customer's active license serialises this customer's enqueues: the duplicate check and the
    -- quota count below see every build committed before, so neither can be raced past. NO KEY UPDATE, so the
    -- foreign-key checks of other transactions (KEY SHARE) on this license are not blocked.
    SELECT l.* INTO v_license
    FROM licenses l
    WHERE l.customer_id = p_customer_id AND l.status = 'active' AND l.deleted_at IS NULL
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        SELECT l.status INTO v_reason
        FROM licenses l
        WHERE l.customer_id = p_customer_id AND l.deleted_at IS NULL
        ORDER BY l.created_at DESC
        LIMIT 1;
        IF v_reason IS NULL THEN
            RAISE EXCEPTION 'customer % has no license', p_customer_id USING ERRCODE = 'P0001';
        END IF;
        RAISE EXCEPTION 'customer % has no active license (its license is %)', p_customer_id, v_reason
            USING ERRCODE = 'P0001';
    END IF;
    IF v_license.expires_at IS NOT NULL AND v_license.expires_at <= now() THEN
        RAISE EXCEPTION 'license % of customer % has expired (at %)', v_license.id, p_customer_id,
            v_license.expires_at USING ERRCODE = 'P0001';
    END IF;
    IF v_license.starts_at > clock_timestamp() THEN
        RAISE EXCEPTION 'license % of customer % has not started yet (starts at %)', v_license.id, p_customer_id,
            v_license.starts_at USING ERRCODE = 'P0001';
    END IF;

    v_hash := manifest_hash(p_manifest);

    -- created_at is the clock, not the transaction start, so builds enqueued in one transaction keep their
    -- order (FIFO within a priority); not_before stays the transaction start, so they are claimable at once.

    -- The same manifest already queued or running for this customer: that build is the answer.
    SELECT b.id INTO v_build_id
    FROM build_queue b
    WHERE b.customer_id = p_customer_id AND b.manifest_hash = v_hash AND b.status IN ('queued', 'running')
    ORDER BY b.created_at
    LIMIT 1;
    IF FOUND THEN
        RETURN v_build_id;
    END IF;

    -- A usable cache entry: a build that is already done, uses no worker and no quota.
    SELECT * INTO v_entry FROM record_cache_access(v_hash, p_customer_id) LIMIT 1;
    IF FOUND THEN
        INSERT INTO build_queue (
            customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit, cache_entry_id,
            worker_id, progress, stage, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds,
            cancel_requested, image_reference, image_digest, source, created_at, finished_at
        ) VALUES (
            p_customer_id, v_license.id, p_manifest, v_hash, p_priority, 'succeeded', true, v_entry.id,
            NULL, 100, 'cached', 0, 3, 3600, 120,
            false, v_entry.image_reference, v_entry.image_digest, p_source, clock_timestamp(), clock_timestamp()
        )
        RETURNING id INTO v_build_id;
        INSERT INTO build_results (build_id, attempt, status, image_reference, image_digest, log, queue_wait_ms,
                                   duration_ms)
        VALUES (v_build_id, 1, 'succeeded', v_entry.image_reference, v_entry.image_digest, '', 0, 0);
        INSERT INTO build_events (build_id, event_type, from_status, to_status, message, data)
        VALUES (v_build_id, 'cache_hit', NULL, 'succeeded', 'served from the build cache',
                jsonb_build_object('cache_entry_id', v_entry.id, 'source', p_source));
        RETURN v_build_id;
    END IF;

    SELECT * INTO v_usage FROM get_license_quota_usage(v_license.id);
    IF v_usage.remaining <= 0 THEN
        RAISE EXCEPTION 'monthly build quota of license % is used up (% of % builds this month)',
            v_license.id, v_usage.used, v_usage.monthly_quota USING ERRCODE = 'P0001';
    END IF;

    INSERT INTO build_queue (
        customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit, progress, retry_count,
        max_retries, timeout_seconds, heartbeat_timeout_seconds, cancel_requested, source, created_at, not_before
    ) VALUES (
        p_customer_id, v_license.id, p_manifest, v_hash, p_priority, 'queued', false, 0, 0,
        3, 3600, 120, false, p_source, clock_timestamp(), now()
    )
    RETURNING id INTO v_build_id;
    INSERT INTO build_events (build_id, event_type, from_status, to_status, message, data)
    VALUES (v_build_id, 'enqueued', NULL, 'queued', '',
            jsonb_build_object('priority', p_priority, 'source', p_source));
    -- Delivered at commit; idle workers LISTEN on this channel instead of polling.
    PERFORM pg_notify('build_queue', v_build_id::text);
    RETURN v_build_id;
END;
$$;

CREATE OR REPLACE FUNCTION enqueue_build(p_customer_id uuid, p_manifest jsonb, p_priority integer DEFAULT 5)
RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT enqueue_build(p_customer_id, p_manifest, p_priority, 'api')
$$;


-- get_next_build_for_worker: claim the most urgent claimable build (zero or one row).
--
-- Claimable: queued, past its retry backoff (not_before, against the statement time), its license usable, and its license below max_concurrent_builds.
-- Candidates are locked with SKIP LOCKED, so workers never wait for each other's candidates. The concurrency
-- limit is checked from the running builds only (the partial index build_queue_running_lic_idx), never from
-- history, under a per-license advisory lock taken before the final count: two claims for one license are
-- serialised, so the limit holds exactly. The function only ever blocks on that lock while it holds no other
-- license lock (later candidates use try-lock), so claims cannot deadlock each other.
CREATE OR REPLACE FUNCTION get_next_build_for_worker(p_worker_id text)
RETURNS SETOF build_queue
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_full uuid[];
    v_candidate record;
    v_running integer;
    v_holding_lock boolean := false;
    v_build build_queue%ROWTYPE;
BEGIN
    IF p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
        RAISE EXCEPTION 'worker id must not be empty' USING ERRCODE = 'P0001';
    END IF;

    -- Licenses at their limit now, from running builds only (bounded by the number of workers).
    SELECT coalesce(array_agg(r.license_id), '{}') INTO v_full
    FROM (
        SELECT b.license_id, count(*) AS running
        FROM build_queue b
        WHERE b.status = 'running'
        GROUP BY b.license_id
    ) r
    JOIN licenses l ON l.id = r.license_id
    WHERE r.running >= l.max_concurrent_builds;

    LOOP
        -- The license is checked in scalar subqueries, not a join: the planner then has one table to plan and
        -- walks build_queue_claim_idx in claim order (a join let it start from the licenses and sort every queued
        -- build, 10 ms instead of 0.1).
        SELECT b.id, b.license_id,
               (SELECT l.max_concurrent_builds FROM licenses l WHERE l.id = b.license_id) AS max_concurrent_builds
        INTO v_candidate
        FROM build_queue b
        WHERE b.status = 'queued'
          AND b.not_before <= statement_timestamp()
          AND b.license_id <> ALL (v_full)
          AND (SELECT l.status = 'active' AND l.deleted_at IS NULL AND (l.expires_at IS NULL OR l.expires_at > now())
               FROM licenses l WHERE l.id = b.license_id)
        ORDER BY b.priority DESC, b.created_at, b.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;

        IF NOT v_holding_lock THEN
            PERFORM pg_advisory_xact_lock(build_license_lock_key(v_candidate.license_id));
            v_holding_lock := true;
        ELSIF NOT pg_try_advisory_xact_lock(build_license_lock_key(v_candidate.license_id)) THEN
            v_full := v_full || v_candidate.license_id;
            CONTINUE;
        END IF;
        -- A fresh snapshot, taken after the lock: it sees every claim committed for this license.
        SELECT count(*) INTO v_running
        FROM build_queue b
        WHERE b.license_id = v_candidate.license_id AND b.status = 'running';
        IF v_running >= v_candidate.max_concurrent_builds THEN
            v_full := v_full || v_candidate.license_id;
            CONTINUE;
        END IF;

        UPDATE build_queue b
        SET status = 'running', worker_id = p_worker_id, started_at = now(), heartbeat_at = now(),
            progress = 0, stage = NULL, cancel_requested = false
        WHERE b.id = v_candidate.id
        RETURNING b.* INTO v_build;
        INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
        VALUES (v_build.id, 'claimed', 'queued', 'running', p_worker_id, '',
                jsonb_build_object('attempt', v_build.retry_count + 1));
        RETURN NEXT v_build;
        RETURN;
    END LOOP;
END;
$$;


-- The outcome of one attempt of a build that is leaving the running state (build_results row).
CREATE OR REPLACE FUNCTION build_record_result(p_build build_queue, p_status text, p_worker_id text,
                                               p_error text DEFAULT NULL)
RETURNS void
LANGUAGE sql VOLATILE AS $$
    INSERT INTO build_results (build_id, attempt, status, worker_id, image_reference, image_digest, error_message,
                               log, queue_wait_ms, duration_ms)
    SELECT p_build.id,
           coalesce((SELECT max(r.attempt) FROM build_results r WHERE r.build_id = p_build.id), 0) + 1,
           p_status, p_worker_id,
           CASE WHEN p_status = 'succeeded' THEN p_build.image_reference END,
           CASE WHEN p_status = 'succeeded' THEN p_build.image_digest END,
           p_error, '',
           CASE WHEN p_build.started_at IS NOT NULL
                THEN greatest(0, (extract(epoch FROM p_build.started_at - p_build.not_before) * 1000)::bigint) END,
           CASE WHEN p_build.started_at IS NOT NULL
                THEN greatest(0, (extract(epoch FROM now() - p_build.started_at) * 1000)::bigint) END
$$;


-- Raise unless the build exists; the shared check of the worker-facing functions.
CREATE OR REPLACE FUNCTION build_require(p_build_id uuid, p_worker_id text)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_build_id IS NULL THEN
        RAISE EXCEPTION 'build id must not be NULL' USING ERRCODE = 'P0001';
    END IF;
    IF p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
        RAISE EXCEPTION 'worker id must not be empty' USING ERRCODE = 'P0001';
    END IF;
    PERFORM 1 FROM build_queue b WHERE b.id = p_build_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'build % does not exist', p_build_id USING ERRCODE = 'P0002';
    END IF;
END;
$$;


-- update_build_progress: progress and heartbeat from the worker holding the running build. False (and nothing
-- changed) when it does not hold it. When cancellation was requested, the build becomes cancelled and the
-- answer is false, so the worker stops.
CREATE OR REPLACE FUNCTION update_build_progress(p_build_id uuid, p_worker_id text, p_progress integer,
                                                 p_stage text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_build build_queue%ROWTYPE;
BEGIN
    IF p_progress IS NULL OR p_progress NOT BETWEEN 0 AND 100 THEN
        RAISE EXCEPTION 'progress must be an integer from 0 to 100, got %', coalesce(p_progress::text, 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
    IF p_build_id IS NULL OR p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
        PERFORM build_require(p_build_id, p_worker_id);
    END IF;

    SELECT b.* INTO v_build
    FROM build_queue b
    WHERE b.id = p_build_id AND b.status = 'running' AND b.worker_id = p_worker_id
    FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM build_require(p_build_id, p_worker_id);
        RETURN false;
    END IF;

    IF v_build.cancel_requested THEN
        UPDATE build_queue b SET status = 'cancelled', finished_at = now(), heartbeat_at = now()
        WHERE b.id = p_build_id
        RETURNING b.* INTO v_build;
        PERFORM build_record_result(v_build, 'cancelled', p_worker_id, 'cancelled while running');
        INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
        VALUES (p_build_id, 'cancelled', 'running', 'cancelled', p_worker_id, 'stopped by its worker', '{}');
        RETURN false;
    END IF;

    UPDATE build_queue b
    SET progress = p_progress, stage = coalesce(p_stage, b.stage), heartbeat_at = now()
    WHERE b.id = p_build_id;
    IF p_stage IS NOT NULL AND p_stage IS DISTINCT FROM v_build.stage THEN
        INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
        VALUES (p_build_id, 'stage', 'running', 'running', p_worker_id, p_stage,
                jsonb_build_object('progress', p_progress));
    END IF;
    RETURN true;
END;
$$;


-- complete_build: the terminal transition of a running build by the worker holding it, with its build_results
-- row; a success is registered in the build cache. False (and nothing changed) when the worker does not hold it.
CREATE OR REPLACE FUNCTION complete_build(p_build_id uuid, p_worker_id text, p_succeeded boolean,
                                          p_image_reference text DEFAULT NULL, p_image_digest text DEFAULT NULL,
                                          p_error text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_build build_queue%ROWTYPE;
    v_status text;
BEGIN
    IF p_build_id IS NULL OR p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
        PERFORM build_require(p_build_id, p_worker_id);
    END IF;
    IF p_succeeded IS NULL THEN
        RAISE EXCEPTION 'succeeded must be true or false, not NULL' USING ERRCODE = 'P0001';
    END IF;
    IF p_succeeded AND (coalesce(btrim(p_image_reference), '') = '' OR coalesce(btrim(p_image_digest), '') = '') THEN
        RAISE EXCEPTION 'a succeeded build needs an image reference and an image digest' USING ERRCODE = 'P0001';
    END IF;
    v_status := CASE WHEN p_succeeded THEN 'succeeded' ELSE 'failed' END;

    UPDATE build_queue b
    SET status = v_status, finished_at = now(), heartbeat_at = now(),
        progress = CASE WHEN p_succeeded THEN 100 ELSE b.progress END,
        image_reference = CASE WHEN p_succeeded THEN p_image_reference END,
        image_digest = CASE WHEN p_succeeded THEN p_image_digest END,
        error_message = CASE WHEN p_succeeded THEN NULL ELSE coalesce(p_error, 'failed') END
    WHERE b.id = p_build_id AND b.status = 'running' AND b.worker_id = p_worker_id
    RETURNING b.* INTO v_build;
    IF NOT FOUND THEN
        PERFORM build_require(p_build_id, p_worker_id);
        RETURN false;
    END IF;

    -- The result row inline (not build_record_result): this is the hot path of every build.
    INSERT INTO build_results (build_id, attempt, status, worker_id, image_reference, image_digest, error_message,
                               log, queue_wait_ms, duration_ms)
    VALUES (p_build_id,
            coalesce((SELECT max(r.attempt) FROM build_results r WHERE r.build_id = p_build_id), 0) + 1,
            v_status, p_worker_id, v_build.image_reference, v_build.image_digest, v_build.error_message, '',
            greatest(0, (extract(epoch FROM v_build.started_at - v_build.not_before) * 1000)::bigint),
            greatest(0, (extract(epoch FROM v_build.finished_at - v_build.started_at) * 1000)::bigint));
    INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
    VALUES (p_build_id, v_status, 'running', v_status, p_worker_id, coalesce(v_build.error_message, ''), '{}');
    IF p_succeeded THEN
        PERFORM register_build_in_cache(p_build_id);
    END IF;
    RETURN true;
END;
$$;


-- handle_build_timeouts: rescue running builds whose heartbeat is older than heartbeat_timeout_seconds or that
-- have run longer than timeout_seconds. With retries left a build goes back to the queue (retry_count + 1,
-- claimable after build_retry_backoff); with none left it is timed_out; one whose cancellation was requested is
-- cancelled. Returns how many builds it changed. Builds locked right now (a worker reporting) are left for the
-- next run, so it is safe to run at any time, from any number of places.
CREATE OR REPLACE FUNCTION handle_build_timeouts()
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer;
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
        RETURNING b.id, b.not_before, b.retry_count
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
    SELECT count(*) INTO v_count FROM changed;
    RETURN v_count;
END;
$$;


-- release_build: a worker that stops (SIGTERM) hands a running build back to the queue at once, without
-- spending a retry. False when the worker does not hold it.
CREATE OR REPLACE FUNCTION release_build(p_build_id uuid, p_worker_id text, p_reason text DEFAULT 'worker stopping')
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM build_require(p_build_id, p_worker_id);
    UPDATE build_queue b
    SET status = 'queued', worker_id = NULL, started_at = NULL, heartbeat_at = NULL, progress = 0, stage = NULL,
        not_before = now()
    WHERE b.id = p_build_id AND b.status = 'running' AND b.worker_id = p_worker_id AND NOT b.cancel_requested;
    IF NOT FOUND THEN
        -- Not held, or cancellation was requested meanwhile: then the progress call cancels it, as asked.
        PERFORM update_build_progress(p_build_id, p_worker_id, 0);
        RETURN false;
    END IF;
    INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
    VALUES (p_build_id, 'released', 'running', 'queued', p_worker_id, coalesce(p_reason, ''), '{}');
    PERFORM pg_notify('build_queue', p_build_id::text);
    RETURN true;
END;
$$;


-- cancel_build: a queued build is cancelled at once ('cancelled'); a running one is marked, and its worker's next
-- update_build_progress returns false and cancels it ('cancel_requested'). Raises for a finished build.
CREATE OR REPLACE FUNCTION cancel_build(p_build_id uuid, p_reason text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_build build_queue%ROWTYPE;
BEGIN
    IF p_build_id IS NULL THEN
        RAISE EXCEPTION 'build id must not be NULL' USING ERRCODE = 'P0001';
    END IF;
    SELECT b.* INTO v_build FROM build_queue b WHERE b.id = p_build_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'build % does not exist', p_build_id USING ERRCODE = 'P0002';
    END IF;
    IF v_build.status = 'queued' THEN
        UPDATE build_queue b SET status = 'cancelled', finished_at = now(), error_message = p_reason
        WHERE b.id = p_build_id
        RETURNING b.* INTO v_build;
        PERFORM build_record_result(v_build, 'cancelled', NULL, coalesce(p_reason, 'cancelled while queued'));
        INSERT INTO build_events (build_id, event_type, from_status, to_status, message, data)
        VALUES (p_build_id, 'cancelled', 'queued', 'cancelled', coalesce(p_reason, ''), '{}');
        RETURN 'cancelled';
    ELSIF v_build.status = 'running' THEN
        IF NOT v_build.cancel_requested THEN
            UPDATE build_queue b SET cancel_requested = true, error_message = p_reason WHERE b.id = p_build_id;
            INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data)
            VALUES (p_build_id, 'cancel_requested', 'running', 'running', v_build.worker_id, coalesce(p_reason, ''),
                    '{}');
        END IF;
        RETURN 'cancel_requested';
    END IF;
    RAISE EXCEPTION 'build % is already % and cannot be cancelled', p_build_id, v_build.status
        USING ERRCODE = 'P0001';
END;
$$;


-- retry_build: a failed, timed-out or cancelled build goes back to the queue with its retries renewed.
CREATE OR REPLACE FUNCTION retry_build(p_build_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_status text;
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
    WHERE b.id = p_build_id;
    INSERT INTO build_events (build_id, event_type, from_status, to_status, message, data)
    VALUES (p_build_id, 'retried', v_status, 'queued', '', '{}');
    PERFORM pg_notify('build_queue', p_build_id::text);
END;
$$;


-- reprioritize_build: change the priority of a queued build.
CREATE OR REPLACE FUNCTION reprioritize_build(p_build_id uuid, p_priority integer)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_build build_queue%ROWTYPE;
BEGIN
    IF p_build_id IS NULL THEN
        RAISE EXCEPTION 'build id must not be NULL' USING ERRCODE = 'P0001';
    END IF;
    IF p_priority IS NULL OR p_priority NOT BETWEEN 1 AND 10 THEN
        RAISE EXCEPTION 'priority must be an integer from 1 to 10 (10 is the most urgent), got %',
            coalesce(p_priority::text, 'NULL') USING ERRCODE = 'P0001';
    END IF;
    SELECT b.* INTO v_build FROM build_queue b WHERE b.id = p_build_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'build % does not exist', p_build_id USING ERRCODE = 'P0002';
    END IF;
    IF v_build.status <> 'queued' THEN
        RAISE EXCEPTION 'build % is %; only queued builds can be reprioritized', p_build_id, v_build.status
            USING ERRCODE = 'P0001';
    END IF;
    IF v_build.priority = p_priority THEN
        RETURN;
    END IF;
    UPDATE build_queue b SET priority = p_priority WHERE b.id = p_build_id;
    INSERT INTO build_events (build_id, event_type, from_status, to_status, message, data)
    VALUES (p_build_id, 'reprioritized', 'queued', 'queued', '',
            jsonb_build_object('from', v_build.priority, 'to', p_priority));
END;
$$;


-- Builds waiting or running, with their customer, license tier and how long they have waited or run.
CREATE OR REPLACE VIEW active_builds AS
SELECT b.id,
       b.customer_id,
       c.name AS customer_name,
       b.license_id,
       l.tier,
       b.status,
       b.priority,
       b.progress,
       b.stage,
       b.worker_id,
       b.retry_count,
       b.max_retries,
       b.cancel_requested,
       b.source,
       b.manifest_hash,
       b.created_at,
       b.not_before,
       b.started_at,
       b.heartbeat_at,
       CASE WHEN b.status = 'queued' THEN now() - b.created_at ELSE b.started_at - b.created_at END AS queue_wait,
       CASE WHEN b.status = 'running' THEN now() - b.started_at END AS running_for,
       CASE WHEN b.status = 'running' THEN now() - b.heartbeat_at END AS heartbeat_age,
       (b.status = 'running' AND b.heartbeat_at < now() - make_interval(secs => b.heartbeat_timeout_seconds))
           AS heartbeat_overdue
FROM build_queue b
JOIN customers c ON c.id = b.customer_id
JOIN licenses l ON l.id = b.license_id
WHERE b.status IN ('queued', 'running');


-- Per customer and UTC day (of finishing): counts by outcome, success rate, durations and queue waits.
-- The success rate counts builds that ran (cache hits and cancellations excluded).
CREATE OR REPLACE VIEW build_performance_summary AS
SELECT b.customer_id,
       c.name AS customer_name,
       (b.finished_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS total_builds,
       count(*) FILTER (WHERE b.status = 'succeeded' AND NOT b.cache_hit) AS succeeded,
       count(*) FILTER (WHERE b.status = 'failed') AS failed,
       count(*) FILTER (WHERE b.status = 'timed_out') AS timed_out,
       count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE b.cache_hit) AS cache_hits,
       round(
           (count(*) FILTER (WHERE b.status = 'succeeded' AND NOT b.cache_hit))::numeric
           / nullif(count(*) FILTER (WHERE b.status IN ('succeeded', 'failed', 'timed_out') AND NOT b.cache_hit), 0),
           4
       ) AS success_rate,
       round(avg(extract(epoch FROM b.finished_at - b.started_at)) FILTER (WHERE b.started_at IS NOT NULL), 3)
           AS avg_duration_seconds,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.finished_at - b.started_at))
           FILTER (WHERE b.started_at IS NOT NULL))::numeric, 3) AS p50_duration_seconds,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM b.finished_at - b.started_at))
           FILTER (WHERE b.started_at IS NOT NULL))::numeric, 3) AS p95_duration_seconds,
       round(avg(extract(epoch FROM b.started_at - b.created_at)) FILTER (WHERE b.started_at IS NOT NULL), 3)
           AS avg_queue_wait_seconds,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM b.started_at - b.created_at))
           FILTER (WHERE b.started_at IS NOT NULL))::numeric, 3) AS p95_queue_wait_seconds
FROM build_queue b
JOIN customers c ON c.id = b.customer_id
WHERE b.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') AND b.finished_at IS NOT NULL
GROUP BY b.customer_id, c.name, (b.finished_at AT TIME ZONE 'UTC')::date;


-- Per customer with a usable license: this month's quota and use, and what is queued and running now.
CREATE OR REPLACE VIEW customer_build_usage AS
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
       (SELECT count(*) FROM build_queue b WHERE b.license_id = l.id AND b.status = 'running') AS running_builds,
       (SELECT count(*) FROM build_queue b WHERE b.customer_id = c.id AND b.status = 'queued') AS queued_builds,
       (SELECT count(*) FROM build_queue b
        WHERE b.license_id = l.id AND b.cache_hit AND b.created_at >= q.period_start) AS cache_hits_this_month,
       (SELECT max(b.created_at) FROM build_queue b WHERE b.customer_id = c.id) AS last_build_at
FROM customers c
JOIN licenses l ON l.customer_id = c.id AND l.status = 'active' AND l.deleted_at IS NULL
CROSS JOIN LATERAL get_license_quota_usage(l.id) q
WHERE c.deleted_at IS NULL;
