-- Artifacts, logs and metrics for build agents in any language (docs/sql-api.md, "Build output"). Each function is
-- callable only by the worker holding the running build, validates its input and raises SQLSTATE class HN:
-- HN001 a NULL or empty argument, HN004 a malformed artifact, log chunk or metric, HN103 an unknown build, HN302 a
-- worker that does not hold the build, HN203 an SBOM or signature the build is not entitled to. Nothing is written
-- when one is raised.

-- The build's row, locked FOR SHARE, when p_worker_id holds it running; its attempt number (retry_count + 1).
-- FOR SHARE: a concurrent completion, cancellation or rescue of that build waits for this transaction (or this
-- one sees the build finished), so output is never written to a build its worker no longer holds. It does not
-- conflict with other writers of output for the same build.
CREATE OR REPLACE FUNCTION build_output_attempt(p_build_id uuid, p_worker_id text)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_status text;
    v_worker text;
    v_retries integer;
BEGIN
    IF p_build_id IS NULL THEN
        RAISE EXCEPTION 'build id must not be null' USING ERRCODE = 'HN001';
    END IF;
    IF p_worker_id IS NULL OR btrim(p_worker_id) = '' THEN
        RAISE EXCEPTION 'worker id must not be empty' USING ERRCODE = 'HN001';
    END IF;
    SELECT b.status, b.worker_id, b.retry_count INTO v_status, v_worker, v_retries
      FROM build_queue b WHERE b.id = p_build_id
       FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'build % does not exist', p_build_id USING ERRCODE = 'HN103';
    END IF;
    IF v_status <> 'running' OR v_worker IS DISTINCT FROM p_worker_id THEN
        RAISE EXCEPTION 'worker % does not hold build % (it is %)', p_worker_id, p_build_id,
            CASE WHEN v_status = 'running' THEN 'running on another worker' ELSE v_status END
            USING ERRCODE = 'HN302',
                  HINT = 'output can be added only by the worker running the build, before complete_build';
    END IF;
    RETURN v_retries + 1;
END;
$$;

-- attach_build_artifact: records an artifact (image, sbom, report, log, signature) of the running build held by
-- p_worker_id; returns its id. Attaching the same (kind, uri, digest) again returns the first one's id, so an agent
-- may retry after a lost connection.
CREATE OR REPLACE FUNCTION attach_build_artifact(
    p_build_id uuid,
    p_worker_id text,
    p_kind text,
    p_uri text,
    p_media_type text,
    p_size_bytes bigint,
    p_digest text,
    p_metadata jsonb DEFAULT '{}'::jsonb
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_sha256 text;
    v_id bigint;
BEGIN
    IF p_kind IS NULL OR p_uri IS NULL OR p_media_type IS NULL OR p_size_bytes IS NULL OR p_digest IS NULL THEN
        RAISE EXCEPTION 'kind, uri, media type, size and digest of an artifact must not be null'
            USING ERRCODE = 'HN001';
    END IF;
    IF p_kind NOT IN ('image', 'sbom', 'report', 'log', 'signature') THEN
        RAISE EXCEPTION 'artifact kind must be one of image, sbom, report, log, signature, got %', p_kind
            USING ERRCODE = 'HN004';
    END IF;
    IF length(p_uri) NOT BETWEEN 1 AND 1000 OR p_uri ~ '[[:space:][:cntrl:]]' THEN
        RAISE EXCEPTION 'artifact uri must be 1 to 1000 characters without spaces or control characters'
            USING ERRCODE = 'HN004';
    END IF;
    IF length(p_media_type) > 200
       OR p_media_type !~ '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$' THEN
        RAISE EXCEPTION 'artifact media type must be type/subtype (e.g. application/spdx+json), got %',
            left(p_media_type, 200) USING ERRCODE = 'HN004';
    END IF;
    IF p_size_bytes < 0 THEN
        RAISE EXCEPTION 'artifact size must be zero or more bytes, got %', p_size_bytes USING ERRCODE = 'HN004';
    END IF;
    IF p_digest !~ '^sha256:[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'artifact digest must be sha256: followed by 64 lower-case hex digits, got %',
            left(p_digest, 100) USING ERRCODE = 'HN004';
    END IF;
    IF p_metadata IS NOT NULL AND (jsonb_typeof(p_metadata) <> 'object' OR octet_length(p_metadata::text) > 16384) THEN
        RAISE EXCEPTION 'artifact metadata must be a JSON object of at most 16384 bytes' USING ERRCODE = 'HN004';
    END IF;

    PERFORM build_output_attempt(p_build_id, p_worker_id);
    -- SBOMs and signatures need the license's sbom / signing feature, fixed on the build at enqueue (HN203).
    PERFORM build_require_artifact_entitlement(p_build_id, p_kind);

    v_sha256 := substr(p_digest, 8);
    SELECT a.id INTO v_id FROM build_artifacts a
     WHERE a.build_id = p_build_id AND a.kind = p_kind AND a.uri = p_uri AND a.sha256 = v_sha256
     LIMIT 1;
    IF FOUND THEN
        RETURN v_id;
    END IF;
    INSERT INTO build_artifacts (build_id, kind, uri, media_type, size_bytes, sha256, metadata, created_at)
    VALUES (p_build_id, p_kind, p_uri, p_media_type, p_size_bytes, v_sha256, coalesce(p_metadata, '{}'::jsonb), now())
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;

-- append_build_log: appends a chunk of output (1 byte to 64 KiB of UTF-8) to the running build's log; returns the
-- chunk's id (a log reads in id order). One insert per call into build_logs, never an update of a growing value.
CREATE OR REPLACE FUNCTION append_build_log(p_build_id uuid, p_worker_id text, p_chunk text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_attempt integer;
    v_id bigint;
BEGIN
    IF p_chunk IS NULL THEN
        RAISE EXCEPTION 'log chunk must not be null' USING ERRCODE = 'HN001';
    END IF;
    IF p_chunk = '' THEN
        RAISE EXCEPTION 'log chunk must not be empty' USING ERRCODE = 'HN004';
    END IF;
    IF octet_length(p_chunk) > 65536 THEN
        RAISE EXCEPTION 'log chunk is % bytes; at most 65536 bytes per call', octet_length(p_chunk)
            USING ERRCODE = 'HN004', HINT = 'split the output into several calls';
    END IF;
    v_attempt := build_output_attempt(p_build_id, p_worker_id);
    INSERT INTO build_logs (build_id, attempt, worker_id, chunk, created_at)
    VALUES (p_build_id, v_attempt, p_worker_id, p_chunk, clock_timestamp())
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;

-- record_build_metric: appends a sample (name, finite value, unit) about the running build; returns its id.
CREATE OR REPLACE FUNCTION record_build_metric(
    p_build_id uuid, p_worker_id text, p_name text, p_value double precision, p_unit text DEFAULT ''
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_name IS NULL OR p_value IS NULL THEN
        RAISE EXCEPTION 'metric name and value must not be null' USING ERRCODE = 'HN001';
    END IF;
    IF p_name !~ '^[a-z][a-z0-9_.]{0,99}$' THEN
        RAISE EXCEPTION 'metric name must be a lower-case letter then letters, digits, _ or . (at most 100), got %',
            left(p_name, 100) USING ERRCODE = 'HN004';
    END IF;
    IF p_value IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN
        RAISE EXCEPTION 'metric value must be a finite number, got %', p_value USING ERRCODE = 'HN004';
    END IF;
    IF length(coalesce(p_unit, '')) > 32 THEN
        RAISE EXCEPTION 'metric unit must be at most 32 characters' USING ERRCODE = 'HN004';
    END IF;
    PERFORM build_output_attempt(p_build_id, p_worker_id);
    INSERT INTO build_metrics (build_id, name, value, unit, recorded_at)
    VALUES (p_build_id, p_name, p_value, coalesce(p_unit, ''), clock_timestamp())
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;

-- cleanup_old_build_logs (builds/sql/0005_maintenance.sql) also trims build_logs chunks older than p_days, one
-- bounded batch per call like the rest.
CREATE OR REPLACE FUNCTION cleanup_old_build_logs(p_days integer DEFAULT 90, p_batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_cutoff timestamptz;
    v_events integer;
    v_metrics integer;
    v_logs integer;
    v_chunks integer;
BEGIN
    IF p_days IS NULL OR p_days < 0 THEN
        RAISE EXCEPTION 'retention must be zero or more days, got %', coalesce(p_days::text, 'null')
            USING ERRCODE = 'P0001', HINT = 'cleanup_old_build_logs(90) keeps the last 90 days';
    END IF;
    IF p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION 'batch size must be at least 1, got %', coalesce(p_batch_size::text, 'null')
            USING ERRCODE = 'P0001';
    END IF;
    v_cutoff := now() - make_interval(days => p_days);

    DELETE FROM build_events
    WHERE id IN (SELECT e.id FROM build_events e WHERE e.created_at < v_cutoff LIMIT p_batch_size);
    GET DIAGNOSTICS v_events = ROW_COUNT;

    DELETE FROM build_metrics
    WHERE id IN (SELECT m.id FROM build_metrics m WHERE m.recorded_at < v_cutoff LIMIT p_batch_size);
    GET DIAGNOSTICS v_metrics = ROW_COUNT;

    DELETE FROM build_logs
    WHERE id IN (SELECT l.id FROM build_logs l WHERE l.created_at < v_cutoff LIMIT p_batch_size);
    GET DIAGNOSTICS v_chunks = ROW_COUNT;

    -- SKIP LOCKED: a result row someone is updating right now is left for the next batch, never waited on.
    UPDATE build_results SET log = ''
    WHERE id IN (
        SELECT r.id FROM build_results r
        WHERE r.created_at < v_cutoff AND r.log <> ''
        LIMIT p_batch_size
        FOR UPDATE SKIP LOCKED
    );
    GET DIAGNOSTICS v_logs = ROW_COUNT;

    RETURN v_events + v_metrics + v_chunks + v_logs;
END;
$$;
