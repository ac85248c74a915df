-- builds.0044_completion_cost: a completion's cache registration writes and reads less.
--
-- bench/queue_throughput.py --only cost put the cache work merged with builds.0041 and 0042 in the completion's
-- registration (register_build_in_cache -> register_cache_entry): 107 buffers per completion against 84.5 before.
--   * The month rollup's pricing (build_cache_access_price) ran on every new entry, two scans of every month's
--     rollup partition, although an entry made by this transaction has had no lookups: the insert trigger now
--     fires only for a row whose created_at is before now() (the default is the statement's time), i.e. a row
--     inserted with its older created_at (a restored entry), the one kind of new row that can find folded hits
--     under its id (builds.models, build_cache_access_reprice_insert). Not covered: an entry deleted and inserted
--     again, with a new created_at, in the transaction that also folded its hits.
--   * The retirement of the other visibility's entry scanned every live entry of the owner through
--     build_cache_owner_storage_idx when the registry had no statistics (a new database): the narrow partial
--     index priced like the unique key, 31 buffers at the benchmark's size and growing with the owner's entries.
--     It now names the other visibility (all three columns of the unique key equal), and that index goes.
--   * build_cache_owner_idx (owner_id, created_at DESC) and build_cache_owner_storage_idx (owner_id, live entries,
--     including visibility and size) become one index, build_cache_owner_idx (owner_id) including visibility,
--     size and deleted_at: the foreign key's checks and owner lookups use it as before (nothing read the owner's
--     entries in created_at order through it), and cache_statistics reads each owner's storage by an index-only
--     scan of it, skipping the few soft-deleted entries. One index fewer for every registration to write.
--   * build_cache_arch_gin goes: nothing in the project searches entries by architecture (the seed's index).
-- build_cache_registry_duration_idx stays: without it the dashboard's cache panels read the registry's heap
-- (docs/performance.md, "The completion's cache registration").
--
-- The registry is locked against writes while the owner index is built (reads go on until the old indexes are
-- dropped, just before the commit).

LOCK TABLE build_cache_registry IN SHARE ROW EXCLUSIVE MODE;

CREATE INDEX build_cache_owner_new ON build_cache_registry (owner_id) INCLUDE (visibility, size_bytes, deleted_at);
DROP INDEX build_cache_owner_idx;
DROP INDEX build_cache_owner_storage_idx;
DROP INDEX build_cache_arch_gin;
ALTER INDEX build_cache_owner_new RENAME TO build_cache_owner_idx;

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
$$;
