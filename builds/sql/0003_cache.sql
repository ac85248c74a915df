-- The build cache's SQL API (DESIGN.md, docs/sql-api.md "Build cache"): the canonical manifest hash, cache
-- lookups with the tier rules, and registering a finished build's image under its manifest hash.

-- manifest_canonical_json: the canonical text of a manifest (or of a value inside one). builds/cache.py computes
-- the same text in Python; the two are tested against each other. The rules, applied recursively:
--   * objects: members whose value is null are dropped (a null field means the same as an absent one), keys
--     starting with "_" are dropped at every depth ("_comment", "_note"), and the top-level keys "comment",
--     "comments", "description" and "notes" are dropped; the rest are sorted by key (Unicode code point order,
--     which is the byte order of UTF-8, COLLATE "C") and written as {"k":v,...} with no whitespace;
--   * the top-level "architectures" (a string or a list of strings) becomes the sorted list of its distinct
--     values, each trimmed and lower-cased;
--   * arrays keep their order (it is meaningful: build steps, arguments) and their nulls;
--   * numbers are written in plain decimal notation with no exponent and no trailing zeros (1, 1.0, 1e0 and
--     10E-1 are all "1"; -0 is "0");
--   * strings are written as JSON strings with the escapes of RFC 8259 as PostgreSQL writes them (\" \\ \b \f
--     \n \r \t, other control characters as \u00XX in lower-case hex); other characters are written as they are;
--   * true, false and null as themselves.
CREATE OR REPLACE FUNCTION manifest_canonical_json(p_value jsonb, p_top_level boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v_type text := jsonb_typeof(p_value);
    v_parts text[];
BEGIN
    IF v_type = 'object' THEN
        SELECT array_agg(
                   to_json(m.key)::text || ':' ||
                   CASE WHEN p_top_level AND m.key = 'architectures'
                        THEN manifest_canonical_architectures(m.value)
                        ELSE manifest_canonical_json(m.value) END
                   ORDER BY m.key COLLATE "C")
          INTO v_parts
          FROM jsonb_each(p_value) AS m
         WHERE jsonb_typeof(m.value) <> 'null'
           AND left(m.key, 1) <> '_'
           AND NOT (p_top_level AND m.key IN ('comment', 'comments', 'description', 'notes'));
        RETURN '{' || coalesce(array_to_string(v_parts, ','), '') || '}';
    ELSIF v_type = 'array' THEN
        SELECT array_agg(manifest_canonical_json(e.value) ORDER BY e.ordinality)
          INTO v_parts
          FROM jsonb_array_elements(p_value) WITH ORDINALITY AS e;
        RETURN '[' || coalesce(array_to_string(v_parts, ','), '') || ']';
    ELSIF v_type = 'number' THEN
        RETURN trim_scale(p_value::text::numeric)::text;
    ELSE
        -- string, boolean, null: jsonb's own text form is already canonical (to_json escaping).
        RETURN p_value::text;
    END IF;
END;
$$;

-- The canonical form of the top-level "architectures": sorted distinct trimmed lower-case strings.
CREATE OR REPLACE FUNCTION manifest_canonical_architectures(p_value jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v_list jsonb := CASE jsonb_typeof(p_value) WHEN 'string' THEN jsonb_build_array(p_value) ELSE p_value END;
    v_result text;
BEGIN
    IF jsonb_typeof(v_list) <> 'array'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_list) e WHERE jsonb_typeof(e) <> 'string') THEN
        RAISE EXCEPTION 'manifest "architectures" must be a string or a list of strings'
            USING ERRCODE = 'P0001';
    END IF;
    SELECT '[' || coalesce(string_agg(to_json(a.arch)::text, ',' ORDER BY a.arch COLLATE "C"), '') || ']'
      INTO v_result
      FROM (SELECT DISTINCT lower(btrim(e #>> '{}')) AS arch FROM jsonb_array_elements(v_list) e) a;
    RETURN v_result;
END;
$$;

-- manifest_hash: SHA-256 (64 lower-case hex) of the UTF-8 bytes of the manifest's canonical JSON.
CREATE OR REPLACE FUNCTION manifest_hash(p_manifest jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF p_manifest IS NULL OR jsonb_typeof(p_manifest) <> 'object' THEN
        RAISE EXCEPTION 'a manifest must be a JSON object, not %', coalesce(jsonb_typeof(p_manifest), 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
    RETURN encode(sha256(convert_to(manifest_canonical_json(p_manifest, true), 'UTF8')), 'hex');
END;
$$;

-- manifest_is_shareable: a manifest may be served to other tenants only when it uses no private registry
-- credentials: no object anywhere in it has a non-null "registry_credential" or "registry_credential_id" (a
-- private base image pulled with one, or a "push" target authenticated with one).
CREATE OR REPLACE FUNCTION manifest_is_shareable(p_manifest jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NOT jsonb_path_exists(
        p_manifest, 'lax $.** ? (@.registry_credential != null || @.registry_credential_id != null)'
    );
$$;

-- The tier rules of DESIGN.md (licensing/tiers.py: reads_shared_cache, publishes_shared_cache; tested to agree).
CREATE OR REPLACE FUNCTION cache_tier_reads_shared(p_tier text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(p_tier IN ('pro', 'enterprise', 'asp'), false);
$$;

CREATE OR REPLACE FUNCTION cache_tier_publishes_shared(p_tier text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(p_tier IN ('enterprise', 'asp'), false);
$$;

-- cache_validate_hash: raise a clear error for a manifest hash that is not 64 lower-case hex characters.
CREATE OR REPLACE FUNCTION cache_validate_hash(p_manifest_hash text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_manifest_hash IS NULL OR p_manifest_hash !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'manifest hash must be 64 lower-case hex characters, got %',
            coalesce(quote_literal(left(p_manifest_hash, 80)), 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
END;
$$;

-- record_cache_access: the cache entry this customer may use for a manifest hash, or no row. Its own live
-- (unexpired, not deleted) entry first; else, when the tier of its usable license reads shared entries, the
-- newest live shared entry. Never another tenant's private entry. Logs the hit or miss with its latency in
-- build_access_log (the update_cache_stats trigger counts hits from there).
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

-- cache_content_sha256: the SHA-256 of what a cache entry registers: its image reference and digest and the
-- (sha256, size, uri) of each image artifact of its source build, one per line in a fixed order. Recomputed by
-- the integrity check (manage.py cache_verify) and compared with the entry's content_sha256.
CREATE OR REPLACE FUNCTION cache_content_sha256(p_image_reference text, p_image_digest text, p_build_id uuid)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(
        p_image_reference || E'\n' || p_image_digest || E'\n' ||
        coalesce((SELECT string_agg(a.sha256 || ' ' || a.size_bytes || ' ' || a.uri, E'\n'
                                    ORDER BY a.sha256, a.uri, a.size_bytes)
                    FROM build_artifacts a
                   WHERE a.build_id = p_build_id AND a.kind = 'image'), ''),
        'UTF8')), 'hex');
$$;

-- register_cache_entry: insert, or refresh, the live entry of (hash, owner, visibility); returns its id.
-- Race-free: concurrent registrations meet on build_cache_hash_owner_vis_uniq and the loser updates. A live
-- entry of the same owner and hash with the other visibility is retired, so an owner has one live entry a hash.
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

-- register_build_in_cache: called by complete_build on success, after it has set image_reference and
-- image_digest on the build. Registers (or refreshes) the cache entry of the build's manifest hash and owner and
-- returns its id. Shared when the tier of the build's license publishes, the customer has not opted out
-- (customers.publishes_to_shared_cache) and the manifest is shareable (manifest_is_shareable); else private.
-- Architectures come from the manifest, the size from the build's image artifacts, the duration (what each hit
-- saves) from its start and finish. A build that was itself served from the cache returns its entry.
CREATE OR REPLACE FUNCTION register_build_in_cache(p_build_id uuid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
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
$$;
