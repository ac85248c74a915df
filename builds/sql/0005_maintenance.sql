-- cleanup_old_build_logs: the weekly cleanup of build logs older than p_days, ONE BOUNDED BATCH per call.
-- Deletes up to p_batch_size build_events and build_metrics rows each, and empties up to p_batch_size
-- build_results logs (the result rows themselves are history and stay). Returns the rows changed by this call;
-- call it again until it returns 0 (run_maintenance does, one transaction per batch), so no giant transaction
-- or table-wide lock ever forms, and a run killed mid-way loses nothing: the next one carries on.
CREATE OR REPLACE FUNCTION cleanup_old_build_logs(p_days integer DEFAULT 90, p_batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_cutoff timestamptz;
    v_events integer;
    v_metrics integer;
    v_logs integer;
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

    -- SKIP LOCKED: a result row someone is updating right now is left for the next batch, never waited on.
    UPDATE build_results SET log = ''
    WHERE id IN (
        SELECT r.id FROM build_results r
        WHERE r.created_at < v_cutoff AND r.log <> ''
        LIMIT p_batch_size
        FOR UPDATE SKIP LOCKED
    );
    GET DIAGNOSTICS v_logs = ROW_COUNT;

    RETURN v_events + v_metrics + v_logs;
END;
$$;

-- For psql and pg_cron: every batch, committing between batches (CALL it outside a transaction block).
CREATE OR REPLACE PROCEDURE cleanup_old_build_logs_all(p_days integer DEFAULT 90, p_batch_size integer DEFAULT 5000)
LANGUAGE plpgsql AS $$
BEGIN
    WHILE cleanup_old_build_logs(p_days, p_batch_size) > 0 LOOP
        COMMIT;
    END LOOP;
END;
$$;
