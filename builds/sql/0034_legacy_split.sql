-- Splitting <table>_legacy into monthly partitions (issue 15). The conversion (0031, operations 0004) attached each
-- old table whole as <table>_legacy, for (MINVALUE) .. a bound: retention by drop never reaches the history it
-- holds, because its range ends near the conversion date.
--
-- A month cannot be carved out of <table>_legacy in place: while legacy's range covers the month, every row of it
-- must be in legacy, and narrowing legacy's range means detaching it (ACCESS EXCLUSIVE on the parent) and proving
-- the new range (a scan). So the rows are copied, not moved, in bounded batches (id order, one transaction each)
-- into <table>_split, a partitioned table outside the parent whose month partitions are built exactly like the
-- parent's (same indexes, and a CHECK constraint of the month's range, validated while empty). Rows stay visible,
-- once, in legacy all along; a trigger on legacy (partition_split_mirror) applies to the copy every later delete,
-- update or insert of a row already copied. When the copy has caught up, one short transaction detaches legacy,
-- moves each month partition from <table>_split to the parent (the CHECK constraint spares ATTACH the scan, the
-- indexes are adopted), and drops legacy and <table>_split.

-- Create the table p_name like p_like with an index for each of p_like's indexes, named <index>_<p_suffix>, and its
-- primary key (partition_attach_new's table, not attached).
CREATE OR REPLACE FUNCTION partition_create_table(p_like regclass, p_name text, p_suffix text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_index record;
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED'
                   ' INCLUDING STORAGE)', p_name, p_like);
    FOR v_index IN
        SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def, i.indisprimary AS is_primary,
               i.indisunique AS is_unique
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = p_like
        ORDER BY ic.relname
    LOOP
        IF v_index.is_primary THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY %s', p_name, left(p_name, 58) || '_pkey',
                           substring(v_index.def FROM ' USING btree (\(.*\))$'));
        ELSE
            EXECUTE format('CREATE %sINDEX %I ON %I %s', CASE WHEN v_index.is_unique THEN 'UNIQUE ' ELSE '' END,
                           left(v_index.name, 62 - length(p_suffix)) || '_' || p_suffix, p_name,
                           substring(v_index.def FROM ' USING .*$'));
        END IF;
    END LOOP;
END;
$$;

-- Same contract as before (builds 0031); the table is now made by partition_create_table.
CREATE OR REPLACE FUNCTION partition_attach_new(p_parent regclass, p_name text, p_suffix text, p_bound text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM partition_create_table(p_parent, p_name, p_suffix);
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I %s', p_parent, p_name, p_bound);
END;
$$;

-- The partition of p_parent that the conversion left (<table>_legacy), or NULL.
CREATE OR REPLACE FUNCTION partition_legacy(p_parent regclass)
RETURNS regclass
LANGUAGE sql STABLE
AS $$
    SELECT b.partition FROM partition_bounds(p_parent) b
    WHERE b.partition::text = (SELECT relname FROM pg_class WHERE oid = p_parent) || '_legacy'
$$;

-- The mirror trigger on <table>_legacy while it is being split (arguments: the split table, the key column): a row
-- already copied (id at most the highest id copied) that is deleted, updated or inserted in legacy is deleted,
-- replaced or inserted in the copy too. Rows after the highest id copied are the next batches' business.
CREATE OR REPLACE FUNCTION partition_split_mirror()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_split text := TG_ARGV[0];
    v_column text := TG_ARGV[1];
    v_copied bigint;
    v_columns text;
BEGIN
    IF to_regclass(v_split) IS NULL THEN
        RETURN NULL;  -- the copy was dropped (to start it again): nothing to keep in step until the next run
    END IF;
    EXECUTE format('SELECT max(id) FROM %I', v_split) INTO v_copied;
    IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.id <= v_copied THEN
        EXECUTE format('DELETE FROM %I WHERE id = $1 AND %I = ($2::jsonb ->> %L)::timestamptz', v_split, v_column,
                       v_column) USING OLD.id, to_jsonb(OLD);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.id <= v_copied THEN
        v_columns := partition_insert_columns(v_split::regclass);
        PERFORM partition_split_ensure_month(v_split::regclass, (to_jsonb(NEW) ->> v_column)::timestamptz);
        EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM jsonb_populate_record(NULL::%I, $1)'
                       ' ON CONFLICT DO NOTHING', v_split, v_columns, v_columns, v_split) USING to_jsonb(NEW);
    END IF;
    RETURN NULL;
END;
$$;

-- The month partition of a split table (<table>_split) holding p_at, created if missing: the parent's table
-- (partition_create_table: the parent's indexes, named as the parent's own month partitions will be) with a CHECK
-- constraint of the month's range, validated at once on the empty table, so that ATTACH to the parent scans nothing.
CREATE OR REPLACE FUNCTION partition_split_ensure_month(p_split regclass, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_parent regclass := regexp_replace((SELECT relname FROM pg_class WHERE oid = p_split), '_split$', '')::regclass;
    v_column text := partition_key_column(p_split);
    v_from timestamptz := date_trunc('month', p_at, 'UTC');
    v_suffix text := 'p' || to_char(date_trunc('month', p_at, 'UTC') AT TIME ZONE 'UTC', 'YYYYMM');
    v_name text := (SELECT relname FROM pg_class WHERE oid = v_parent) || '_' || v_suffix;
    v_foreign_key record;
BEGIN
    IF EXISTS (SELECT 1 FROM partition_bounds(p_split) b WHERE b.lower_bound = v_from) THEN
        RETURN;
    END IF;
    PERFORM partition_create_table(v_parent, v_name, v_suffix);
    -- The parent's foreign keys too, while the table is empty: ATTACH adopts an equal one instead of checking
    -- every row against the referenced table.
    FOR v_foreign_key IN
        SELECT c.conname, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c
        WHERE c.conrelid = v_parent AND c.contype = 'f' AND c.conparentid = 0
    LOOP
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', v_name, v_foreign_key.conname, v_foreign_key.def);
    END LOOP;
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I >= %L AND %I < %L)', v_name,
                   left(v_name, 51) || '_split_bound', v_column, v_from, v_column, v_from + interval '1 month');
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', p_split, v_name, v_from,
                   v_from + interval '1 month');
END;
$$;

-- Start (or resume) splitting p_parent's legacy partition: <table>_split and the mirror trigger on legacy, each
-- created if missing. Returns legacy, or NULL when there is none (a <table>_split left without legacy, because
-- retention dropped legacy whole meanwhile, is dropped).
CREATE OR REPLACE FUNCTION partition_split_prepare(p_parent regclass)
RETURNS regclass
LANGUAGE plpgsql
AS $$
DECLARE
    v_legacy regclass := partition_legacy(p_parent);
    v_name text := (SELECT relname FROM pg_class WHERE oid = p_parent);
    v_column text := partition_key_column(p_parent);
BEGIN
    IF v_column IS NULL THEN
        RAISE EXCEPTION '% is not a partitioned table', p_parent USING ERRCODE = 'P0001';
    END IF;
    IF v_legacy IS NULL THEN
        EXECUTE format('DROP TABLE IF EXISTS %I', v_name || '_split');
        RETURN NULL;
    END IF;
    IF to_regclass(v_name || '_split') IS NULL THEN
        EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING GENERATED) PARTITION BY RANGE (%I)',
                       v_name || '_split', p_parent, v_column);
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id, %I)', v_name || '_split', v_column);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = v_legacy AND tgname = 'partition_split_mirror') THEN
        EXECUTE format('CREATE TRIGGER partition_split_mirror AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW'
                       ' EXECUTE FUNCTION partition_split_mirror(%L, %L)', v_legacy, v_name || '_split', v_column);
    END IF;
    RETURN v_legacy;
END;
$$;

-- One batch: copy up to p_batch_size rows of legacy after the highest id copied, in id order, into their month
-- partitions of <table>_split. The rows are locked FOR SHARE while they are copied, so a concurrent delete or update
-- of one waits, and its mirror trigger then sees it copied. Returns the rows copied; 0 when the copy has caught up.
CREATE OR REPLACE FUNCTION partition_split_copy(p_parent regclass, p_batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_legacy regclass := partition_legacy(p_parent);
    v_split regclass := to_regclass((SELECT relname FROM pg_class WHERE oid = p_parent) || '_split');
    v_column text := partition_key_column(p_parent);
    v_columns text := partition_insert_columns(p_parent);
    v_copied bigint;
    v_month timestamptz;
    v_rows integer;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION 'batch size must be at least 1, got %', coalesce(p_batch_size::text, 'null')
            USING ERRCODE = 'P0001';
    END IF;
    IF v_legacy IS NULL OR v_split IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT coalesce(max(id), -9223372036854775808) FROM %s', v_split) INTO v_copied;
    DROP TABLE IF EXISTS pg_temp.partition_split_batch;
    EXECUTE format('CREATE TEMPORARY TABLE partition_split_batch ON COMMIT DROP AS'
                   ' SELECT %s FROM %s WHERE id > %s ORDER BY id LIMIT %s FOR SHARE',
                   v_columns, v_legacy, v_copied, p_batch_size);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    FOR v_month IN EXECUTE format('SELECT DISTINCT date_trunc(''month'', %I, ''UTC'') FROM pg_temp.partition_split_batch',
                                  v_column) LOOP
        PERFORM partition_split_ensure_month(v_split, v_month);
    END LOOP;
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM pg_temp.partition_split_batch ON CONFLICT DO NOTHING',
                   v_split, v_columns, v_columns);
    DROP TABLE pg_temp.partition_split_batch;
    RETURN v_rows;
END;
$$;

-- The end of a split, in the caller's transaction (which should set lock_timeout): with legacy locked against
-- writes (SHARE ROW EXCLUSIVE: readers go on), the last rows are copied and the copy is checked row for row
-- (count and sum of ids per month); then legacy is detached (ACCESS EXCLUSIVE on the parent, held to the commit,
-- for catalog changes only), each month partition of <table>_split is detached from it and attached to the parent
-- (its validated CHECK constraint proves the range; the DEFAULT partition, kept empty by maintenance, is the only
-- table scanned), and legacy and <table>_split are dropped. Raises (changing nothing) if the copy differs.
-- Returns the months attached.
CREATE OR REPLACE FUNCTION partition_split_finish(p_parent regclass)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_legacy regclass := partition_legacy(p_parent);
    v_split regclass := to_regclass((SELECT relname FROM pg_class WHERE oid = p_parent) || '_split');
    v_column text := partition_key_column(p_parent);
    v_differs boolean;
    v_month record;
    v_months integer := 0;
BEGIN
    IF v_legacy IS NULL OR v_split IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_legacy);
    WHILE partition_split_copy(p_parent, 100000) > 0 LOOP
    END LOOP;
    EXECUTE format('SELECT EXISTS (SELECT date_trunc(''month'', %I, ''UTC''), count(*), sum(id) FROM %s GROUP BY 1'
                   ' EXCEPT SELECT date_trunc(''month'', %I, ''UTC''), count(*), sum(id) FROM %s GROUP BY 1)'
                   ' OR EXISTS (SELECT date_trunc(''month'', %I, ''UTC''), count(*), sum(id) FROM %s GROUP BY 1'
                   ' EXCEPT SELECT date_trunc(''month'', %I, ''UTC''), count(*), sum(id) FROM %s GROUP BY 1)',
                   v_column, v_legacy, v_column, v_split, v_column, v_split, v_column, v_legacy)
        INTO v_differs;
    IF v_differs THEN
        RAISE EXCEPTION 'split of %: the copy in % differs from %', p_parent, v_split, v_legacy
            USING ERRCODE = 'P0001', HINT = 'DROP TABLE the split table: the next run copies legacy again';
    END IF;
    EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p_parent, v_legacy);
    FOR v_month IN SELECT b.partition, b.lower_bound, b.upper_bound FROM partition_bounds(v_split) b
                   ORDER BY b.lower_bound LOOP
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', v_split, v_month.partition);
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)', p_parent, v_month.partition,
                       v_month.lower_bound, v_month.upper_bound);
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_month.partition,
                       left((SELECT relname FROM pg_class WHERE oid = v_month.partition), 51) || '_split_bound');
        v_months := v_months + 1;
    END LOOP;
    EXECUTE format('DROP TABLE %s', v_legacy);
    EXECUTE format('DROP TABLE %s', v_split);
    RETURN v_months;
END;
$$;
