-- Manifest limits (docs/sql-api.md "Manifest limits"; builds/cache.py MANIFEST_MAX_DEPTH / MANIFEST_MAX_BYTES
-- hold the same numbers and raise the same messages):
--   * depth: at most 32 nested objects/arrays on any path (the manifest object itself is level 1). Checked with
--     one bounded jsonpath walk (C, never deeper than level 32) BEFORE the recursive canonicalisation, so a
--     700-deep manifest gets this error rather than SQLSTATE 54001 "stack depth limit exceeded";
--   * size: at most 262144 bytes (256 KiB) of canonical JSON text (UTF-8), measured on the text manifest_hash
--     hashes anyway (no second walk).
-- Both raise P0001 (the v1 error of manifest_hash / enqueue_build); a v2 caller passes 'HN002'.

CREATE OR REPLACE FUNCTION manifest_max_depth() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 32 $$;

CREATE OR REPLACE FUNCTION manifest_max_bytes() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 262144 $$;

-- manifest_check_depth: raise when some object or array sits deeper than manifest_max_depth().
CREATE OR REPLACE FUNCTION manifest_check_depth(p_manifest jsonb, p_errcode text DEFAULT 'P0001')
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    -- Level 0 is the manifest itself: a container at level 32 is the 33rd nested one.
    IF jsonb_path_exists(
           p_manifest,
           ('strict $.**{' || manifest_max_depth() || '} ? (@.type() == "object" || @.type() == "array")')::jsonpath
       ) THEN
        RAISE EXCEPTION 'a manifest must not be nested more than % levels deep', manifest_max_depth()
            USING ERRCODE = p_errcode;
    END IF;
END;
$$;

-- manifest_check_size: raise when a manifest's canonical text is longer than manifest_max_bytes() bytes.
CREATE OR REPLACE FUNCTION manifest_check_size(p_canonical text, p_errcode text DEFAULT 'P0001')
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v_bytes integer := octet_length(p_canonical);
BEGIN
    IF v_bytes > manifest_max_bytes() THEN
        RAISE EXCEPTION 'a manifest must not be larger than % bytes of canonical JSON, this one is % bytes',
            manifest_max_bytes(), v_bytes
            USING ERRCODE = p_errcode;
    END IF;
END;
$$;

-- manifest_canonical_json (0003_cache.sql), now guarded: the top-level call checks the depth before recursing and
-- the size of the text it returns. The recursive calls (p_top_level false) are unchanged.
CREATE OR REPLACE FUNCTION manifest_canonical_json(p_value jsonb, p_top_level boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v_type text := jsonb_typeof(p_value);
    v_parts text[];
    v_text text;
BEGIN
    IF v_type = 'object' THEN
        IF p_top_level THEN
            PERFORM manifest_check_depth(p_value);
        END IF;
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
        v_text := '{' || coalesce(array_to_string(v_parts, ','), '') || '}';
        IF p_top_level THEN
            PERFORM manifest_check_size(v_text);
        END IF;
        RETURN v_text;
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
