ALTER TABLE build_license_state SET (fillfactor = 50);
ALTER TABLE build_member_state SET (fillfactor = 50);
ALTER TABLE build_license_state RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
                                       autovacuum_vacuum_cost_delay);
ALTER TABLE build_member_state RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
                                      autovacuum_vacuum_cost_delay);
ALTER TABLE build_quota_usage RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
                                     autovacuum_vacuum_cost_delay);
-- The triggers that executed these are gone by now (the migration's RemoveTrigger/AddTrigger run backwards first).
DROP FUNCTION IF EXISTS build_queue_account_row();
DROP FUNCTION IF EXISTS build_queue_set_updated_at();

-- cache_content_sha256 as in 0003_cache.sql.
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
