-- builds.0049_completion_registration, backwards: the completion registers through register_build_in_cache again, and
-- cache_content_sha256, register_cache_entry, register_build_in_cache and build_complete take back their definitions.

CREATE OR REPLACE FUNCTION cache_content_sha256(p_image_reference text, p_image_digest text, p_build_id uuid)
 RETURNS text
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
    v_artifacts text;
BEGIN
    SELECT string_agg(a.sha256 || ' ' || a.size_bytes || ' ' || a.uri, E'\n' ORDER BY a.sha256, a.uri, a.size_bytes)
    INTO v_artifacts
    FROM build_artifacts a
    WHERE a.build_id = p_build_id AND a.kind = 'image';
    RETURN encode(sha256(convert_to(
        p_image_reference || E'\n' || p_image_digest || E'\n' || coalesce(v_artifacts, ''), 'UTF8')), 'hex');
END;
$function$;

CREATE OR REPLACE FUNCTION register_cache_entry(p_manifest_hash text, p_owner_id uuid, p_visibility text, p_image_reference text, p_image_digest text, p_architectures text[], p_size_bytes bigint, p_content_sha256 text, p_source_build_id uuid DEFAULT NULL::uuid, p_build_duration_ms bigint DEFAULT NULL::bigint, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_id uuid;
BEGIN
    PERFORM cache_validate_hash(p_manifest_hash);
    IF p_owner_id IS NULL OR NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = p_owner_id) THEN
        RAISE EXCEPTION 'customer % does not exist', coalesce(p_owner_id::text, 'NULL') USING ERRCODE = 'P0002';
    END IF;
    IF p_visibility IS NULL OR p_visibility NOT IN ('private', 'shared') THEN
        RAISE EXCEPTION 'cache visibility must be private or shared, got %', coalesce(p_visibility, 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
    IF coalesce(p_image_reference, '') = '' OR coalesce(p_image_digest, '') = '' THEN
        RAISE EXCEPTION 'a cache entry needs an image reference and an image digest' USING ERRCODE = 'P0001';
    END IF;
    IF p_size_bytes IS NULL OR p_size_bytes < 0 THEN
        RAISE EXCEPTION 'cache entry size must be a non-negative number of bytes, got %',
            coalesce(p_size_bytes::text, 'NULL') USING ERRCODE = 'P0001';
    END IF;
    IF p_build_duration_ms < 0 THEN
        RAISE EXCEPTION 'build duration must not be negative, got % ms', p_build_duration_ms USING ERRCODE = 'P0001';
    END IF;
    IF p_content_sha256 IS NULL OR p_content_sha256 !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'content SHA-256 must be 64 lower-case hex characters' USING ERRCODE = 'P0001';
    END IF;

    INSERT INTO build_cache_registry AS e (
        manifest_hash, owner_id, visibility, image_reference, image_digest, architectures, size_bytes,
        content_sha256, source_build_id, build_duration_ms, hit_count, expires_at
    )
    VALUES (
        p_manifest_hash, p_owner_id, p_visibility, p_image_reference, p_image_digest,
        coalesce(p_architectures, '{}'), p_size_bytes, p_content_sha256, p_source_build_id, p_build_duration_ms, 0,
        p_expires_at
    )
    ON CONFLICT (manifest_hash, owner_id, visibility) WHERE deleted_at IS NULL DO UPDATE
        SET image_reference = EXCLUDED.image_reference,
            image_digest = EXCLUDED.image_digest,
            architectures = EXCLUDED.architectures,
            size_bytes = EXCLUDED.size_bytes,
            content_sha256 = EXCLUDED.content_sha256,
            source_build_id = coalesce(EXCLUDED.source_build_id, e.source_build_id),
            build_duration_ms = coalesce(EXCLUDED.build_duration_ms, e.build_duration_ms),
            expires_at = EXCLUDED.expires_at
    RETURNING e.id INTO v_id;

    -- The entry of the other visibility, if any, is retired: a probe by the manifest hash, the unique key's three
    -- columns all equal (with `visibility <> p_visibility` and no statistics on the registry, the planner scanned
    -- every live entry of the owner instead).
    UPDATE build_cache_registry o
       SET deleted_at = now()
     WHERE o.manifest_hash = p_manifest_hash AND o.owner_id = p_owner_id
       AND o.visibility = CASE p_visibility WHEN 'private' THEN 'shared' ELSE 'private' END
       AND o.deleted_at IS NULL;

    RETURN v_id;
END;
$function$;

CREATE OR REPLACE FUNCTION register_build_in_cache(p_build_id uuid)
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_build build_queue;
    v_tier text;
    v_publishes boolean;
    v_visibility text;
    v_architectures text[];
    v_size bigint;
    v_duration_ms bigint;
BEGIN
    SELECT b.* INTO v_build FROM build_queue b WHERE b.id = p_build_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'build % does not exist', coalesce(p_build_id::text, 'NULL') USING ERRCODE = 'P0002';
    END IF;
    IF v_build.cache_hit THEN
        RETURN v_build.cache_entry_id;
    END IF;
    IF v_build.status NOT IN ('running', 'succeeded') THEN
        RAISE EXCEPTION 'build % is %, only a successful build is cached', p_build_id, v_build.status
            USING ERRCODE = 'P0001';
    END IF;
    IF coalesce(v_build.image_reference, '') = '' OR coalesce(v_build.image_digest, '') = '' THEN
        RAISE EXCEPTION 'build % has no image reference and digest to cache', p_build_id USING ERRCODE = 'P0001';
    END IF;

    SELECT l.tier INTO v_tier FROM licenses l WHERE l.id = v_build.license_id;
    SELECT c.publishes_to_shared_cache INTO v_publishes FROM customers c WHERE c.id = v_build.customer_id;
    v_visibility := CASE
        WHEN cache_tier_publishes_shared(v_tier) AND v_publishes AND manifest_is_shareable(v_build.manifest)
        THEN 'shared' ELSE 'private' END;

    IF jsonb_typeof(v_build.manifest -> 'architectures') IN ('string', 'array') THEN
        SELECT array_agg(a ORDER BY a COLLATE "C") INTO v_architectures
          FROM jsonb_array_elements_text(manifest_canonical_architectures(v_build.manifest -> 'architectures')::jsonb) a;
    END IF;

    SELECT coalesce(sum(a.size_bytes), 0) INTO v_size
      FROM build_artifacts a WHERE a.build_id = p_build_id AND a.kind = 'image';

    v_duration_ms := CASE WHEN v_build.started_at IS NOT NULL THEN
        greatest((extract(epoch FROM coalesce(v_build.finished_at, now()) - v_build.started_at) * 1000)::bigint, 0)
    END;

    RETURN register_cache_entry(
        p_manifest_hash => v_build.manifest_hash,
        p_owner_id => v_build.customer_id,
        p_visibility => v_visibility,
        p_image_reference => v_build.image_reference,
        p_image_digest => v_build.image_digest,
        p_architectures => v_architectures,
        p_size_bytes => v_size,
        p_content_sha256 => cache_content_sha256(v_build.image_reference, v_build.image_digest, p_build_id),
        p_source_build_id => p_build_id,
        p_build_duration_ms => v_duration_ms
    );
END;
$function$;

CREATE OR REPLACE FUNCTION build_complete(p_build_id uuid, p_worker_id text, p_result text, p_image_reference text, p_image_digest text, p_error text, p_v2 boolean)
 RETURNS text
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION build_slot_awaited()
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM build_waiters w WHERE w.since > now() - interval '1 minute')
$$;

DROP FUNCTION build_cache_register(build_queue);
DROP FUNCTION cache_entry_store(text, uuid, text, text, text, text[], bigint, text, uuid, bigint, timestamptz);
DROP FUNCTION cache_content_digest(text, text, text);
DROP FUNCTION cache_image_artifacts(uuid);
