-- Back to the bodies of 0004_queue.sql and 0002_quota_usage.sql.
DROP FUNCTION IF EXISTS retry_build(uuid);
DROP FUNCTION IF EXISTS complete_build_v2(uuid, text, text, text, text, text);
DROP FUNCTION IF EXISTS claim_builds(text, integer);
DROP FUNCTION IF EXISTS get_next_build_for_worker(text);
DROP FUNCTION IF EXISTS enqueue_build_v2(uuid, jsonb, integer, text);
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

DROP FUNCTION IF EXISTS build_claim(text, integer, boolean);
DROP FUNCTION IF EXISTS build_complete(uuid, text, text, text, text, text, boolean);
DROP FUNCTION IF EXISTS build_require(uuid, text, boolean);
DROP FUNCTION IF EXISTS build_enqueue(uuid, jsonb, integer, text, boolean);
DROP FUNCTION IF EXISTS build_rescue_if_due();
DROP FUNCTION IF EXISTS rescue_expired_builds();
DROP TABLE IF EXISTS build_rescue_clock;
DROP FUNCTION IF EXISTS build_queue_account(build_queue, build_queue);
DROP FUNCTION IF EXISTS build_member_apply(uuid, uuid, integer, integer, boolean);
DROP FUNCTION IF EXISTS build_state_apply(uuid, integer, integer, integer, boolean);
DROP FUNCTION IF EXISTS build_quota_month(timestamptz);
DROP FUNCTION IF EXISTS build_valid_image_digest(text);
DROP FUNCTION IF EXISTS build_valid_image_reference(text);
DROP FUNCTION IF EXISTS build_notify(text, uuid, uuid, integer);
ALTER FUNCTION get_license_quota_usage(uuid) ROWS 1;
