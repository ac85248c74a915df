-- operations.0005_archive_month_rollup: a month of build_access_log moved whole to the archive leaves the cache
-- access rollup by cache_access_rollup_retire_month (the drop of the rollup's partition of that month,
-- builds.0041_cache_month_rollup) instead of one subtracting upsert per (customer, entry) the month saw, and after
-- the log's DETACH. Nothing else of the move changes.

CREATE OR REPLACE FUNCTION public.access_log_archive_move_month(p_partition regclass)
 RETURNS bigint
 LANGUAGE plpgsql
AS $$
DECLARE
    v_check text := access_log_archive_bound_name(p_partition);
    v_lower timestamptz;
    v_upper timestamptz;
    v_suffix text;
    v_name text;
    v_existing regclass;
    v_rows bigint;
    v_index record;
    v_brin text;
BEGIN
    SELECT b.lower_bound, b.upper_bound INTO v_lower, v_upper
    FROM access_log_archive_whole_months('infinity') b WHERE b.partition = p_partition;
    IF v_lower IS NULL THEN
        RAISE EXCEPTION '% is not a month of build_access_log that can move to the archive whole', p_partition
            USING ERRCODE = 'P0001';
    END IF;
    v_suffix := 'p' || to_char(v_lower AT TIME ZONE 'UTC', 'YYYYMM');
    v_name := 'build_access_log_archive_' || v_suffix;

    PERFORM access_log_archive_add_bound(p_partition);
    IF NOT (SELECT convalidated FROM pg_constraint WHERE conrelid = p_partition AND conname = v_check) THEN
        EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', p_partition, v_check);
    END IF;

    -- The partition is locked against writes first (SHARE: readers go on), so the rows counted and moved are the
    -- same.
    EXECUTE format('LOCK TABLE %s IN SHARE MODE', p_partition);
    -- The rows archived by this move (not those the archive held already).
    EXECUTE format('SELECT count(*) FROM %s', p_partition) INTO v_rows;

    SELECT a.partition INTO v_existing FROM partition_bounds('build_access_log_archive') a
    WHERE a.lower_bound = v_lower AND a.upper_bound = v_upper;
    IF v_existing IS NOT NULL THEN
        PERFORM set_config('pgtrigger.ignore', partition_trigger_names('build_access_log'), true);
        EXECUTE format('INSERT INTO %s (id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)'
                       ' SELECT id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at FROM %s'
                       ' ON CONFLICT DO NOTHING', p_partition, v_existing);
        PERFORM set_config('pgtrigger.ignore', '{}', true);
        EXECUTE format('ALTER TABLE build_access_log_archive DETACH PARTITION %s', v_existing);
        EXECUTE format('DROP TABLE %s', v_existing);
    END IF;

    EXECUTE format('ALTER TABLE build_access_log DETACH PARTITION %s', p_partition);
    -- The month's rows stop counting in the cache access rollup (a DETACH fires no trigger): the rollup is kept per
    -- UTC month and partitioned by it (builds.0041_cache_month_rollup), so its month's partition is dropped, not
    -- subtracted one upsert per (customer, entry) the month saw. After the DETACH above, which locks
    -- build_access_log until the commit: no lookup can then hold the rollup while this waits for it.
    PERFORM cache_access_rollup_retire_month(v_lower);

    -- The live table's indexes but the primary key and the BRIN index on accessed_at (the archive's two).
    v_brin := NULL;
    FOR v_index IN
        SELECT ic.relname AS name, i.indisprimary AS is_primary, am.amname AS method,
               pg_get_indexdef(i.indexrelid) AS def
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
        WHERE i.indrelid = p_partition
    LOOP
        IF v_index.is_primary THEN
            CONTINUE;
        ELSIF v_brin IS NULL AND v_index.method = 'brin' AND v_index.def LIKE '%USING brin (accessed_at)' THEN
            v_brin := v_index.name;
        ELSE
            EXECUTE format('DROP INDEX %I', v_index.name);
        END IF;
    END LOOP;
    EXECUTE format('ALTER TABLE %s RENAME TO %I', p_partition, v_name);
    EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', v_name,
                   (SELECT conname FROM pg_constraint WHERE conrelid = p_partition AND contype = 'p'),
                   left(v_name, 58) || '_pkey');
    IF v_brin IS NOT NULL THEN
        EXECUTE format('ALTER INDEX %I RENAME TO %I', v_brin, 'build_access_archive_brin_' || v_suffix);
    END IF;
    EXECUTE format('ALTER TABLE %I ADD COLUMN archived_at timestamptz NOT NULL DEFAULT now()', v_name);
    EXECUTE format('ALTER TABLE build_access_log_archive ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   v_name, v_lower, v_upper);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', v_name, v_check);
    RETURN v_rows;
END;
$$;
