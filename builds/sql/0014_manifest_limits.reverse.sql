-- Back to 0003_cache.sql's manifest_canonical_json (no depth or size guard) and no limit functions.
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

DROP FUNCTION IF EXISTS manifest_check_size(text, text);
DROP FUNCTION IF EXISTS manifest_check_depth(jsonb, text);
DROP FUNCTION IF EXISTS manifest_max_bytes();
DROP FUNCTION IF EXISTS manifest_max_depth();
