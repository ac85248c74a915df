-- The tables are unpartitioned by the migration's ConvertToPartitions operations (partition_unconvert) before
-- this runs; back to the batched-only retention of 0022.
CREATE OR REPLACE FUNCTION public.cleanup_old_build_logs(p_days integer DEFAULT 90, p_batch_size integer DEFAULT 5000)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
$function$;

DROP FUNCTION partition_unconvert(text);
DROP FUNCTION partition_convert_swap(text, text);
DROP FUNCTION partition_convert_prepare(regclass, text);
DROP FUNCTION partition_drop_before(regclass, timestamptz, integer, boolean);
DROP FUNCTION partition_drain_default(regclass);
DROP FUNCTION ensure_partitions(regclass, integer);
DROP FUNCTION partition_create_month(regclass, timestamptz);
DROP FUNCTION partition_attach_new(regclass, text, text, text);
DROP FUNCTION partition_trigger_names(regclass);
DROP FUNCTION partition_insert_columns(regclass);
DROP FUNCTION partition_key_column(regclass);
DROP FUNCTION partition_bounds(regclass);
DROP FUNCTION partition_move_clear();
DROP FUNCTION partition_move_mark();
DROP FUNCTION partition_row_moving();
