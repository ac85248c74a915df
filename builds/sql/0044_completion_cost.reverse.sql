-- Reverse of 0044_completion_cost.sql: the registry's indexes as builds.0001 and 0041 created them, and
-- register_cache_entry as 0003_cache defined it.

LOCK TABLE build_cache_registry IN SHARE ROW EXCLUSIVE MODE;

CREATE INDEX build_cache_owner_old ON build_cache_registry (owner_id, created_at DESC);
DROP INDEX build_cache_owner_idx;
ALTER INDEX build_cache_owner_old RENAME TO build_cache_owner_idx;
CREATE INDEX IF NOT EXISTS build_cache_owner_storage_idx ON build_cache_registry (owner_id)
    INCLUDE (visibility, size_bytes) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS build_cache_arch_gin ON build_cache_registry USING gin (architectures);

CREATE OR REPLACE FUNCTION register_cache_entry(
    p_manifest_hash text,
    p_owner_id uuid,
    p_visibility text,
    p_image_reference text,
    p_image_digest text,
    p_architectures text[],
    p_size_bytes bigint,
    p_content_sha256 text,
    p_source_build_id uuid DEFAULT NULL,
    p_build_duration_ms bigint DEFAULT NULL,
    p_expires_at timestamptz DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
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

    UPDATE build_cache_registry o
       SET deleted_at = now()
     WHERE o.manifest_hash = p_manifest_hash AND o.owner_id = p_owner_id
       AND o.visibility <> p_visibility AND o.deleted_at IS NULL;

    RETURN v_id;
END;
$$;
