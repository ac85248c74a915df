-- The access-log archive by partition (issue 15): build_access_log_archive becomes partitioned by month on
-- accessed_at like build_access_log (builds 0031), and archive_build_access_log moves a month lying wholly
-- outside the retention window by detaching it from build_access_log and attaching it to the archive: no row is
-- copied or deleted. The window's edge month, rows in build_access_log_legacy and stray rows of the DEFAULT
-- partition are still cut in bounded batches, as before.
--
-- The archive's partitions are named build_access_log_archive_pYYYYMM (one calendar month in UTC, created when a
-- batch first needs them); build_access_log_archive_legacy is the table as it was before the conversion, attached
-- for (MINVALUE) .. the month after its newest row. The archive has no DEFAULT partition: attaching a month then
-- scans nothing, and nothing is written to the archive but by these functions.

-- Conversion, step 1: a CHECK constraint (NOT VALID, so no scan under the lock) bounding accessed_at below the
-- month after the newest archived row; the migration validates it next (SHARE UPDATE EXCLUSIVE). Returns the bound,
-- NULL when the archive is partitioned already.
CREATE OR REPLACE FUNCTION access_log_archive_convert_prepare()
RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    v_bound timestamptz;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'build_access_log_archive'::regclass) THEN
        RETURN NULL;
    END IF;
    -- Only maintenance writes the archive, and only rows older than the retention: the newest row's month bounds
    -- what the legacy partition must cover; later months are attached from build_access_log whole.
    SELECT coalesce(date_trunc('month', max(accessed_at), 'UTC') + interval '1 month',
                    date_trunc('month', now(), 'UTC'))
    INTO v_bound FROM build_access_log_archive;
    ALTER TABLE build_access_log_archive DROP CONSTRAINT IF EXISTS build_access_log_archive_partition_bound;
    EXECUTE format('ALTER TABLE build_access_log_archive ADD CONSTRAINT build_access_log_archive_partition_bound'
                   ' CHECK (accessed_at < %L) NOT VALID', v_bound);
    RETURN v_bound;
END;
$$;

-- Conversion, step 2 (after the CHECK constraint is validated and the unique index on (id, accessed_at) is
-- built): in one short transaction the table becomes build_access_log_archive_legacy, a partitioned table of the
-- same name takes its place (same columns, defaults, BRIN index name; primary key (id, accessed_at), as
-- PostgreSQL requires), and the old table is attached below the bound (the CHECK constraint spares ATTACH the
-- scan; its indexes are adopted, not rebuilt). An empty table is dropped instead. The archive has no identity,
-- foreign keys or triggers (ids are build_access_log's), so unlike partition_convert_swap there are none to carry.
CREATE OR REPLACE FUNCTION access_log_archive_convert_swap()
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_bound timestamptz;
    v_empty boolean;
    v_attempt integer := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'build_access_log_archive'::regclass) THEN
        RETURN 'already partitioned';
    END IF;
    PERFORM set_config('lock_timeout', '500ms', true);
    LOOP
        BEGIN
            LOCK TABLE build_access_log_archive IN ACCESS EXCLUSIVE MODE;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            v_attempt := v_attempt + 1;
            IF v_attempt >= 20 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.2);
        END;
    END LOOP;
    SELECT (regexp_match(pg_get_constraintdef(c.oid), '''([^'']*)'''))[1]::timestamptz INTO v_bound
    FROM pg_constraint c
    WHERE c.conrelid = 'build_access_log_archive'::regclass AND c.conname = 'build_access_log_archive_partition_bound'
      AND c.convalidated;
    IF v_bound IS NULL THEN
        RAISE EXCEPTION 'convert build_access_log_archive: validate build_access_log_archive_partition_bound first'
            USING ERRCODE = 'P0001';
    END IF;
    IF to_regclass('build_access_log_archive_id_accessed_at_key') IS NULL THEN
        RAISE EXCEPTION 'convert build_access_log_archive: build build_access_log_archive_id_accessed_at_key first'
            USING ERRCODE = 'P0001';
    END IF;
    SELECT NOT EXISTS (SELECT 1 FROM build_access_log_archive) INTO v_empty;

    ALTER INDEX build_access_archive_brin RENAME TO build_access_archive_brin_legacy;
    ALTER TABLE build_access_log_archive RENAME TO build_access_log_archive_legacy;
    ALTER TABLE build_access_log_archive_legacy DROP CONSTRAINT build_access_log_archive_pkey;
    ALTER TABLE build_access_log_archive_legacy ADD CONSTRAINT build_access_log_archive_legacy_pkey
        PRIMARY KEY USING INDEX build_access_log_archive_id_accessed_at_key;

    CREATE TABLE build_access_log_archive (LIKE build_access_log_archive_legacy INCLUDING DEFAULTS
        INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (accessed_at);
    ALTER TABLE build_access_log_archive DROP CONSTRAINT build_access_log_archive_partition_bound;
    ALTER TABLE build_access_log_archive ADD CONSTRAINT build_access_log_archive_pkey PRIMARY KEY (id, accessed_at);
    CREATE INDEX build_access_archive_brin ON build_access_log_archive USING brin (accessed_at);

    IF v_empty THEN
        DROP TABLE build_access_log_archive_legacy;
        RETURN 'converted (empty)';
    END IF;
    EXECUTE format('ALTER TABLE build_access_log_archive ATTACH PARTITION build_access_log_archive_legacy'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', v_bound);
    ALTER TABLE build_access_log_archive_legacy DROP CONSTRAINT build_access_log_archive_partition_bound;
    RETURN format('converted; build_access_log_archive_legacy keeps the rows before %s', v_bound);
END;
$$;

-- The way back (the reverse migration): a plain table with every archived row, primary key on id alone. Copies
-- every row under an ACCESS EXCLUSIVE lock: meant for development databases.
CREATE OR REPLACE FUNCTION access_log_archive_unconvert()
RETURNS text
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'build_access_log_archive'::regclass) THEN
        RETURN 'not partitioned';
    END IF;
    LOCK TABLE build_access_log_archive IN ACCESS EXCLUSIVE MODE;
    CREATE TABLE build_access_log_archive_unpartitioned (LIKE build_access_log_archive INCLUDING DEFAULTS
        INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS);
    INSERT INTO build_access_log_archive_unpartitioned SELECT * FROM build_access_log_archive;
    DROP TABLE build_access_log_archive CASCADE;
    ALTER TABLE build_access_log_archive_unpartitioned RENAME TO build_access_log_archive;
    ALTER TABLE build_access_log_archive ADD CONSTRAINT build_access_log_archive_pkey PRIMARY KEY (id);
    CREATE INDEX build_access_archive_brin ON build_access_log_archive USING brin (accessed_at);
    RETURN 'unpartitioned';
END;
$$;

-- The months of build_access_log that can move to the archive whole: month partitions lying wholly before
-- p_cutoff, oldest first, whose month the archive holds in no partition, or in exactly that month's partition
-- (the edge rows archived by an earlier run). build_access_log_legacy (MINVALUE ..), the DEFAULT partition, and a
-- month inside the archive's own legacy partition are left to the batches.
CREATE OR REPLACE FUNCTION access_log_archive_whole_months(p_cutoff timestamptz)
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE
AS $$
    SELECT b.partition, b.lower_bound, b.upper_bound
    FROM partition_bounds('build_access_log') b
    WHERE NOT b.is_default AND b.upper_bound <= p_cutoff AND b.lower_bound > '-infinity'
      AND b.lower_bound = date_trunc('month', b.lower_bound, 'UTC')
      AND b.upper_bound = b.lower_bound + interval '1 month'
      AND NOT EXISTS (SELECT 1 FROM partition_bounds('build_access_log_archive') a
                      WHERE a.lower_bound < b.upper_bound AND a.upper_bound > b.lower_bound
                        AND (a.lower_bound, a.upper_bound) IS DISTINCT FROM (b.lower_bound, b.upper_bound))
    ORDER BY b.upper_bound
$$;

-- The name of the CHECK constraint that proves a month partition's range once it is detached.
CREATE OR REPLACE FUNCTION access_log_archive_bound_name(p_partition regclass)
RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT left((SELECT relname FROM pg_class WHERE oid = p_partition), 52) || '_archive_bound' $$;

-- Add the CHECK constraint (lower <= accessed_at < upper) to a month partition of build_access_log, NOT VALID (no
-- scan); run_maintenance validates it in a transaction of its own (SHARE UPDATE EXCLUSIVE: writers go on) before
-- the move, so that the move's ATTACH finds it validated and scans nothing. Returns false if it was there.
CREATE OR REPLACE FUNCTION access_log_archive_add_bound(p_partition regclass)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_name text := access_log_archive_bound_name(p_partition);
    v_lower timestamptz;
    v_upper timestamptz;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = p_partition AND conname = v_name) THEN
        RETURN false;
    END IF;
    SELECT b.lower_bound, b.upper_bound INTO v_lower, v_upper
    FROM partition_bounds('build_access_log') b WHERE b.partition = p_partition;
    IF v_lower IS NULL OR v_lower = '-infinity' THEN
        RAISE EXCEPTION '% is not a month partition of build_access_log', p_partition USING ERRCODE = 'P0001';
    END IF;
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (accessed_at >= %L AND accessed_at < %L) NOT VALID',
                   p_partition, v_name, v_lower, v_upper);
    RETURN true;
END;
$$;

-- Move one month partition of build_access_log, lying wholly outside the retention, to the archive; returns the
-- rows it holds. In the caller's transaction, which should set lock_timeout:
--   1. the CHECK constraint is added and validated if run_maintenance has not done it (a scan of the month);
--   2. rows the archive already holds for that month (the edge cut by an earlier run, a few days) are copied into
--      the month's partition, with the counting triggers ignored (they are no new lookups), and the archive's
--      partition is dropped: the month is then whole in one table;
--   3. DETACH from build_access_log. A plain DETACH: DETACH ... CONCURRENTLY is refused while build_access_log has a
--      DEFAULT partition, and cannot run in a transaction, so the month would be in neither table for a moment.
--      Its ACCESS EXCLUSIVE lock on build_access_log is held to the commit, which follows at once: every step
--      after it changes only the catalog (no scan, no copy, no index build);
--   4. the table is renamed (build_access_log_archive_pYYYYMM, its primary key and BRIN index too), loses the live
--      table's other indexes, gains archived_at (a constant default, stored once, no rewrite), and is attached to
--      the archive: the validated CHECK constraint proves the range, the archive has no DEFAULT partition to scan,
--      and the primary key and BRIN index match the archive's, so they are adopted, not built.
CREATE OR REPLACE FUNCTION access_log_archive_move_month(p_partition regclass)
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
    v_emptied bigint[];
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

    -- The month's rows stop counting in the cache access rollup, as the rollup_cache_access_delete trigger does
    -- for rows deleted (a DETACH fires no trigger): one upsert per (customer, entry) of the month, into the folded
    -- shard (-1), which lookups never write (they count in shards 0..63), so no cache lookup waits on these rows
    -- until the commit; fold_cache_access_rollup sums into the same rows. The partition is locked against writes
    -- first (SHARE: readers go on), so the rows subtracted, counted and moved are the same; this comes before the
    -- DETACH below, so build_access_log is not locked while it runs. It is the costly part of the move: one rollup
    -- row written per (customer, entry) the month saw.
    EXECUTE format('LOCK TABLE %s IN SHARE MODE', p_partition);
    -- A pair whose every lookup was in this month now counts nothing: its row goes (fold_cache_access_rollup only
    -- looks for emptied rows among those it folds, builds.0040_cache_fold).
    EXECUTE format('WITH subtracted AS ('
                   ' INSERT INTO build_cache_access_rollup AS r (customer_id, cache_entry_id, shard, hits, misses)'
                   ' SELECT o.customer_id, o.cache_entry_id, -1, -count(*) FILTER (WHERE o.hit),'
                   ' -count(*) FILTER (WHERE NOT o.hit) FROM %s o GROUP BY o.customer_id, o.cache_entry_id'
                   ' ON CONFLICT (customer_id, cache_entry_id, shard) DO UPDATE'
                   ' SET hits = r.hits + EXCLUDED.hits, misses = r.misses + EXCLUDED.misses'
                   ' RETURNING r.id, r.hits, r.misses)'
                   ' SELECT array_agg(id) FROM subtracted WHERE hits = 0 AND misses = 0', p_partition)
        INTO v_emptied;
    IF v_emptied IS NOT NULL THEN
        DELETE FROM build_cache_access_rollup r WHERE r.id = ANY (v_emptied) AND r.hits = 0 AND r.misses = 0;
    END IF;
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

-- archive_build_access_log keeps its name and contract: rows of build_access_log older than p_days go to
-- build_access_log_archive, one bounded step per call, returning the rows it archived (0 when done; a row is
-- always in exactly one of the two tables). First, one whole month per call moves by partition
-- (access_log_archive_move_month; an empty one is simply dropped); then the rest (the window's edge month,
-- build_access_log_legacy, DEFAULT, a month the archive's legacy partition covers) up to p_batch_size rows per
-- call, deleted and inserted in one statement, into the archive's month partitions (created as needed).
CREATE OR REPLACE FUNCTION archive_build_access_log(p_days integer DEFAULT 90, p_batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_cutoff timestamptz;
    v_month record;
    v_empty boolean;
    v_ids bigint[];
    v_times timestamptz[];
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
    v_cutoff := now() - make_interval(days => p_days);

    FOR v_month IN SELECT m.partition FROM access_log_archive_whole_months(v_cutoff) m LOOP
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s)', v_month.partition) INTO v_empty;
        IF v_empty THEN
            -- Nothing to archive (its rows went in batches, or it never had any): dropped, as maintain_partitions
            -- would, and the next month is looked at, so that this call's 0 still means "done".
            EXECUTE format('ALTER TABLE build_access_log DETACH PARTITION %s', v_month.partition);
            EXECUTE format('DROP TABLE %s', v_month.partition);
            CONTINUE;
        END IF;
        RETURN least(access_log_archive_move_month(v_month.partition), 2147483647)::integer;
    END LOOP;

    SELECT array_agg(a.id), array_agg(a.accessed_at) INTO v_ids, v_times
    FROM (SELECT l.id, l.accessed_at FROM build_access_log l WHERE l.accessed_at < v_cutoff LIMIT p_batch_size) a;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    FOR v_month IN SELECT DISTINCT date_trunc('month', t, 'UTC') AS m FROM unnest(v_times) t LOOP
        PERFORM partition_create_month('build_access_log_archive', v_month.m);
    END LOOP;
    WITH moved AS (
        DELETE FROM build_access_log l
        USING unnest(v_ids, v_times) AS k(id, accessed_at)
        WHERE l.id = k.id AND l.accessed_at = k.accessed_at AND l.accessed_at < v_cutoff
        RETURNING l.id, l.manifest_hash, l.customer_id, l.cache_entry_id, l.hit, l.latency_us, l.accessed_at
    ), archived AS (
        INSERT INTO build_access_log_archive (id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)
        SELECT id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at FROM moved
        ON CONFLICT (id, accessed_at) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) INTO v_moved FROM moved;
    RETURN v_moved;
END;
$$;
