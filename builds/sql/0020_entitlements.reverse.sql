-- Back to 0003_cache.sql's record_cache_access (no family sharing), then drop this migration's functions. The
-- entitled_outputs column and the triggers are removed by the migration's own operations.
CREATE OR REPLACE FUNCTION record_cache_access(p_manifest_hash text, p_customer_id uuid)
RETURNS SETOF build_cache_registry
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_tier text;
    v_entry build_cache_registry;
BEGIN
    PERFORM cache_validate_hash(p_manifest_hash);
    IF p_customer_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM customers c WHERE c.id = p_customer_id AND c.deleted_at IS NULL
    ) THEN
        RAISE EXCEPTION 'customer % does not exist', coalesce(p_customer_id::text, 'NULL') USING ERRCODE = 'P0002';
    END IF;

    SELECT e.* INTO v_entry
      FROM build_cache_registry e
     WHERE e.manifest_hash = p_manifest_hash AND e.owner_id = p_customer_id
       AND e.deleted_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())
     ORDER BY e.visibility = 'private' DESC, e.created_at DESC
     LIMIT 1;

    IF NOT FOUND THEN
        SELECT l.tier INTO v_tier
          FROM licenses l
         WHERE l.customer_id = p_customer_id AND l.status = 'active' AND l.deleted_at IS NULL
           AND (l.expires_at IS NULL OR l.expires_at > now())
         LIMIT 1;
        IF cache_tier_reads_shared(v_tier) THEN
            SELECT e.* INTO v_entry
              FROM build_cache_registry e
             WHERE e.manifest_hash = p_manifest_hash AND e.visibility = 'shared'
               AND e.deleted_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())
             ORDER BY e.created_at DESC, e.id
             LIMIT 1;
        END IF;
    END IF;

    INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)
    VALUES (p_manifest_hash, p_customer_id, v_entry.id, v_entry.id IS NOT NULL,
            (extract(epoch FROM clock_timestamp() - v_started) * 1000000)::integer, now());

    IF v_entry.id IS NOT NULL THEN
        RETURN NEXT v_entry;
    END IF;
    RETURN;
END;
$$;

DROP FUNCTION IF EXISTS build_require_artifact_entitlement(uuid, text);
DROP FUNCTION IF EXISTS build_entitled_to_artifact(uuid, text);
DROP FUNCTION IF EXISTS license_entitled_outputs(uuid);
DROP FUNCTION IF EXISTS build_queue_set_entitled_outputs();
