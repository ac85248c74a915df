-- Back to operations 0002's archive_build_access_log (row batches only); the archive is a plain table again by
-- then (access_log_archive_unconvert runs first).
DROP FUNCTION IF EXISTS access_log_archive_move_month(regclass);
DROP FUNCTION IF EXISTS access_log_archive_add_bound(regclass);
DROP FUNCTION IF EXISTS access_log_archive_bound_name(regclass);
DROP FUNCTION IF EXISTS access_log_archive_whole_months(timestamptz);
DROP FUNCTION IF EXISTS access_log_archive_unconvert();
DROP FUNCTION IF EXISTS access_log_archive_convert_swap();
DROP FUNCTION IF EXISTS access_log_archive_convert_prepare();

-- archive_build_access_log: move up to p_batch_size build_access_log rows older than p_days into
-- build_access_log_archive, atomically (one statement: a row is either still live or archived, never both, never
-- lost). Returns the rows moved; call until 0. ON CONFLICT: a row archived already is never archived twice.
CREATE OR REPLACE FUNCTION archive_build_access_log(p_days integer DEFAULT 90, p_batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_moved integer;
BEGIN
    IF p_days IS NULL OR p_days < 0 THEN
        RAISE EXCEPTION 'retention must be zero or more days, got %', coalesce(p_days::text, 'null')
            USING ERRCODE = 'P0001', HINT = 'archive_build_access_log(90) keeps the last 90 days live';
    END IF;
    IF p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION 'batch size must be at least 1, got %', coalesce(p_batch_size::text, 'null')
            USING ERRCODE = 'P0001';
    END IF;
    WITH moved AS (
        DELETE FROM build_access_log
        WHERE id IN (
            SELECT a.id FROM build_access_log a
            WHERE a.accessed_at < now() - make_interval(days => p_days)
            LIMIT p_batch_size
        )
        RETURNING id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at
    ), archived AS (
        INSERT INTO build_access_log_archive (id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)
        SELECT id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at FROM moved
        ON CONFLICT (id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) INTO v_moved FROM moved;
    RETURN v_moved;
END;
$$;
