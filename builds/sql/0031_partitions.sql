-- Monthly range partitions (issue 15), native PostgreSQL: the functions every partitioned table shares, and the
-- conversion of build_events, build_metrics, build_logs and build_access_log (intake converts
-- conversation_messages with the same functions). The conversion itself is run by the migration, statement by
-- statement (honua.sql_migrations.ConvertToPartitions): it adds a CHECK constraint NOT VALID, validates it and
-- builds the unique index on (id, created_at) concurrently, each in its own transaction while writers keep
-- writing, and only then swaps the tables in one short transaction (partition_convert_swap).
--
-- Partitions are named <table>_pYYYYMM and cover one calendar month in UTC, [first day, first day of the next
-- month); <table>_default takes any row no partition covers; <table>_legacy is the table as it was before the
-- conversion, attached for (MINVALUE) .. the first month the conversion created.

-- Every partition of a partitioned table with its bounds (NULL bounds: the DEFAULT partition; -infinity: MINVALUE).
CREATE OR REPLACE FUNCTION partition_bounds(p_parent regclass)
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz, is_default boolean)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_child oid;
    v_expr text;
    v_parts text[];
BEGIN
    FOR v_child, v_expr IN
        SELECT i.inhrelid, pg_get_expr(c.relpartbound, c.oid)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = p_parent
    LOOP
        partition := v_child::regclass;
        IF v_expr = 'DEFAULT' THEN
            lower_bound := NULL; upper_bound := NULL; is_default := true;
        ELSE
            v_parts := regexp_match(v_expr, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$');
            IF v_parts IS NULL THEN
                RAISE EXCEPTION 'partition % of % is not a range partition: %', partition, p_parent, v_expr
                    USING ERRCODE = 'P0001';
            END IF;
            lower_bound := CASE WHEN v_parts[1] = 'MINVALUE' THEN '-infinity'::timestamptz
                                ELSE btrim(v_parts[1], '''')::timestamptz END;
            upper_bound := CASE WHEN v_parts[2] = 'MAXVALUE' THEN 'infinity'::timestamptz
                                ELSE btrim(v_parts[2], '''')::timestamptz END;
            is_default := false;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- The column a partitioned table is partitioned by (its single range key).
CREATE OR REPLACE FUNCTION partition_key_column(p_parent regclass)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT a.attname::text
    FROM pg_partitioned_table p
    JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
    WHERE p.partrelid = p_parent
$$;

-- The columns an INSERT may name (not generated), as a quoted list.
CREATE OR REPLACE FUNCTION partition_insert_columns(p_table regclass)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
    FROM pg_attribute a
    WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
$$;

-- The django-pgtrigger triggers of a table, as the value of pgtrigger.ignore: moving a row between partitions is
-- not an insert or a delete anyone made, so the counters those triggers keep must not see it.
CREATE OR REPLACE FUNCTION partition_trigger_names(p_table regclass)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT '{' || coalesce(string_agg(DISTINCT t.tgname::text, ','), '') || '}'
    FROM pg_trigger t WHERE t.tgrelid = p_table AND t.tgname LIKE 'pgtrigger\_%'
$$;

-- An UPDATE that changes a row's partition key moves the row to another partition, which PostgreSQL carries out as
-- a DELETE and an INSERT: the row-level AFTER DELETE and AFTER INSERT triggers fire (not AFTER UPDATE). The counters
-- those triggers keep (the cache access rollup and hit counters, the conversation stats) must see a move as what it
-- is, an update. partition_move_mark (BEFORE UPDATE of the key, per row) raises a transaction-local flag that
-- partition_move_clear (AFTER UPDATE, per statement: it fires after the row events) lowers again, and the
-- triggers ask partition_row_moving() (builds.BuildAccessLog, intake.ConversationMessage).
CREATE OR REPLACE FUNCTION partition_row_moving()
RETURNS boolean
LANGUAGE sql STABLE
AS $$ SELECT coalesce(current_setting('honua.partition_move', true), '') = 'on' $$;

CREATE OR REPLACE FUNCTION partition_move_mark()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM set_config('honua.partition_move', 'on', true);
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION partition_move_clear()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM set_config('honua.partition_move', 'off', true);
    RETURN NULL;
END;
$$;

-- Create the table p_name like p_parent, with an index for each of the parent's indexes named after it
-- (<parent index>_<suffix>, so a plan names the index it uses) and its primary key, then attach it with p_bound
-- ('DEFAULT' or 'FOR VALUES ...'). CREATE TABLE + ATTACH PARTITION, not CREATE TABLE ... PARTITION OF: attaching
-- takes only SHARE UPDATE EXCLUSIVE on the parent, so inserts into the other partitions go on (the DEFAULT
-- partition is scanned, and locked, to prove it holds no row of the new range: maintenance keeps it empty).
CREATE OR REPLACE FUNCTION partition_attach_new(p_parent regclass, p_name text, p_suffix text, p_bound text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_index record;
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED'
                   ' INCLUDING STORAGE)', p_name, p_parent);
    FOR v_index IN
        SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def, i.indisprimary AS is_primary,
               i.indisunique AS is_unique
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = p_parent
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
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I %s', p_parent, p_name, p_bound);
END;
$$;

-- Create and attach the partition of one calendar month (UTC) unless a partition already covers part of it.
-- Returns true if it created the partition.
CREATE OR REPLACE FUNCTION partition_create_month(p_parent regclass, p_month timestamptz)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_from timestamptz := date_trunc('month', p_month, 'UTC');
    v_to timestamptz := date_trunc('month', p_month, 'UTC') + interval '1 month';
    v_suffix text := 'p' || to_char(date_trunc('month', p_month, 'UTC') AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF EXISTS (SELECT 1 FROM partition_bounds(p_parent) b
               WHERE NOT b.is_default AND b.lower_bound < v_to AND b.upper_bound > v_from) THEN
        RETURN false;
    END IF;
    PERFORM partition_attach_new(p_parent, (SELECT relname FROM pg_class WHERE oid = p_parent) || '_' || v_suffix,
                                 v_suffix, format('FOR VALUES FROM (%L) TO (%L)', v_from, v_to));
    RETURN true;
END;
$$;

-- Partitions for the current month (UTC) and p_months_ahead months after it, and the DEFAULT partition, each
-- created if missing. Idempotent; returns how many partitions it created.
CREATE OR REPLACE FUNCTION ensure_partitions(p_parent regclass, p_months_ahead integer DEFAULT 2)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_created integer := 0;
    v_name text := (SELECT relname FROM pg_class WHERE oid = p_parent);
BEGIN
    IF p_months_ahead IS NULL OR p_months_ahead < 0 THEN
        RAISE EXCEPTION 'months ahead must be zero or more, got %', coalesce(p_months_ahead::text, 'null')
            USING ERRCODE = 'P0001';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = p_parent) THEN
        RAISE EXCEPTION '% is not a partitioned table', p_parent USING ERRCODE = 'P0001';
    END IF;
    FOR i IN 0 .. p_months_ahead LOOP
        IF partition_create_month(p_parent, date_trunc('month', now(), 'UTC') + make_interval(months => i)) THEN
            v_created := v_created + 1;
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM partition_bounds(p_parent) WHERE is_default) THEN
        PERFORM partition_attach_new(p_parent, v_name || '_default', 'default', 'DEFAULT');
        v_created := v_created + 1;
    END IF;
    RETURN v_created;
END;
$$;

-- Move the rows of the DEFAULT partition into monthly partitions: one month per call, the oldest first, in one
-- transaction (the month's rows leave the DEFAULT partition, its partition is created, the rows go in), so a row
-- is always in exactly one place. Returns the rows moved; 0 once the DEFAULT partition is empty. The DEFAULT
-- partition only ever holds strays (rows dated outside every partition), so a month of it is a small batch.
CREATE OR REPLACE FUNCTION partition_drain_default(p_parent regclass)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_default regclass := (SELECT partition FROM partition_bounds(p_parent) WHERE is_default);
    v_column text := partition_key_column(p_parent);
    v_columns text := partition_insert_columns(p_parent);
    v_month timestamptz;
    v_moved integer;
BEGIN
    IF v_default IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT date_trunc(''month'', min(%I), ''UTC'') FROM %s', v_column, v_default) INTO v_month;
    IF v_month IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM set_config('pgtrigger.ignore', partition_trigger_names(p_parent), true);
    DROP TABLE IF EXISTS pg_temp.partition_moving;
    EXECUTE format('CREATE TEMPORARY TABLE partition_moving ON COMMIT DROP AS'
                   ' WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING %s) SELECT * FROM moved',
                   v_default, v_column, v_month, v_column, v_month + interval '1 month', v_columns);
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    PERFORM partition_create_month(p_parent, v_month);
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM pg_temp.partition_moving', p_parent, v_columns, v_columns);
    DROP TABLE pg_temp.partition_moving;
    PERFORM set_config('pgtrigger.ignore', '{}', true);
    RETURN v_moved;
END;
$$;

-- Retention by drop: detach and drop every partition (never the DEFAULT one) whose whole range lies before
-- p_cutoff, oldest first, at most p_max_partitions per call. Plain DETACH + DROP in the caller's transaction,
-- which should be short and set lock_timeout: DETACH ... CONCURRENTLY cannot run inside a transaction block and
-- is refused when the table has a DEFAULT partition. The partition is locked (SHARE) and counted before the
-- parent's ACCESS EXCLUSIVE lock is taken, so that lock lasts only as long as the catalog change. With
-- p_only_empty, a partition that still holds rows is left alone (for tables whose rows must be archived first).
-- Returns the rows the dropped partitions held.
CREATE OR REPLACE FUNCTION partition_drop_before(p_parent regclass, p_cutoff timestamptz,
                                                 p_max_partitions integer DEFAULT 1,
                                                 p_only_empty boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_partition regclass;
    v_rows bigint;
    v_total bigint := 0;
BEGIN
    FOR v_partition IN
        SELECT b.partition FROM partition_bounds(p_parent) b
        WHERE NOT b.is_default AND b.upper_bound <= p_cutoff
        ORDER BY b.upper_bound
        LIMIT p_max_partitions
    LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_partition);
        EXECUTE format('SELECT count(*) FROM %s', v_partition) INTO v_rows;
        CONTINUE WHEN p_only_empty AND v_rows > 0;
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p_parent, v_partition);
        EXECUTE format('DROP TABLE %s', v_partition);
        v_total := v_total + v_rows;
    END LOOP;
    RETURN v_total;
END;
$$;

-- Conversion, step 1: a CHECK constraint (NOT VALID, so no scan under the lock) bounding p_column below the
-- first day of next month (UTC; the month after if next month starts within a day), the range the old table will
-- cover as a partition. The migration validates it next (SHARE UPDATE EXCLUSIVE: writers go on).
CREATE OR REPLACE FUNCTION partition_convert_prepare(p_table regclass, p_column text)
RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    v_name text := (SELECT relname FROM pg_class WHERE oid = p_table);
    v_bound timestamptz := date_trunc('month', now() + interval '1 day', 'UTC') + interval '1 month';
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = p_table) THEN
        RETURN NULL;
    END IF;
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', p_table, v_name || '_partition_bound');
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I < %L) NOT VALID', p_table,
                   v_name || '_partition_bound', p_column, v_bound);
    RETURN v_bound;
END;
$$;

-- Conversion, step 2 (after the CHECK constraint is validated and the unique index on (id, p_column) is built):
-- in one short transaction, the table becomes <table>_legacy, a partitioned table of the same name takes its
-- place with the same columns, defaults, identity sequence (same name, next value), constraints, indexes (same
-- names), foreign keys and triggers, and the old table is attached as the partition below the bound (the CHECK
-- constraint spares ATTACH the scan; the existing indexes are adopted, not rebuilt). An empty table is dropped
-- instead of attached. Then the monthly partitions from the bound on and the DEFAULT partition are created.
-- The ACCESS EXCLUSIVE lock is asked for with a short lock_timeout, several times, so a long transaction on the
-- table makes the conversion wait instead of the writers queueing behind it.
CREATE OR REPLACE FUNCTION partition_convert_swap(p_table text, p_column text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_old regclass := p_table::regclass;
    v_legacy text := p_table || '_legacy';
    v_check text := p_table || '_partition_bound';
    v_key_index text := p_table || '_id_' || p_column || '_key';
    v_bound timestamptz;
    v_next bigint;
    v_empty boolean;
    v_indexes text[] := '{}';
    v_index record;
    v_constraints text[] := '{}';
    v_triggers text[] := '{}';
    v_statement text;
    v_attempt integer := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = v_old) THEN
        RETURN 'already partitioned';
    END IF;
    PERFORM set_config('lock_timeout', '500ms', true);
    LOOP
        BEGIN
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_old);
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
    FROM pg_constraint c WHERE c.conrelid = v_old AND c.conname = v_check AND c.convalidated;
    IF v_bound IS NULL THEN
        RAISE EXCEPTION 'convert %: validate the CHECK constraint % first', p_table, v_check USING ERRCODE = 'P0001';
    END IF;
    IF to_regclass(v_key_index) IS NULL THEN
        RAISE EXCEPTION 'convert %: build the unique index % first', p_table, v_key_index USING ERRCODE = 'P0001';
    END IF;

    EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s)', v_old) INTO v_empty;
    EXECUTE format('SELECT greatest((SELECT max(id) FROM %s) + 1, (SELECT CASE WHEN is_called THEN last_value + 1'
                   ' ELSE last_value END FROM %s), 1)', v_old, pg_get_serial_sequence(p_table, 'id'))
        INTO v_next;

    -- What the new parent must have: the indexes (but the primary key and the new unique index), the foreign
    -- keys and the triggers of the old table, by name.
    FOR v_index IN
        SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = v_old AND NOT i.indisprimary AND ic.relname <> v_key_index
        ORDER BY ic.relname
    LOOP
        v_indexes := v_indexes || format('CREATE INDEX %I ON %I %s', v_index.name, p_table,
                                         substring(v_index.def FROM ' USING .*$'));
        EXECUTE format('ALTER INDEX %I RENAME TO %I', v_index.name, left(v_legacy || '_' || v_index.name, 63));
    END LOOP;
    SELECT coalesce(array_agg(format('ALTER TABLE %I ADD CONSTRAINT %I %s', p_table, c.conname,
                                     pg_get_constraintdef(c.oid)) ORDER BY c.conname), '{}')
    INTO v_constraints
    FROM pg_constraint c WHERE c.conrelid = v_old AND c.contype = 'f';
    SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}') INTO v_triggers
    FROM pg_trigger t WHERE t.tgrelid = v_old AND NOT t.tgisinternal;
    FOR v_statement IN
        SELECT format('DROP TRIGGER %I ON %s', t.tgname, v_old) FROM pg_trigger t
        WHERE t.tgrelid = v_old AND NOT t.tgisinternal
    LOOP
        EXECUTE v_statement;
    END LOOP;

    -- The old table: renamed, its identity (and the sequence) dropped, its primary key now (id, p_column).
    EXECUTE format('ALTER TABLE %s RENAME TO %I', v_old, v_legacy);
    EXECUTE format('ALTER TABLE %I ALTER COLUMN id DROP IDENTITY', v_legacy);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', v_legacy, p_table || '_pkey');
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY USING INDEX %I', v_legacy, v_legacy || '_pkey',
                   v_key_index);

    -- The new parent.
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED'
                   ' INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (%I)', p_table, v_legacy, p_column);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', p_table, v_check);
    EXECUTE format('ALTER TABLE %I ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY'
                   ' (SEQUENCE NAME %I START WITH %s)', p_table, p_table || '_id_seq', v_next);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id, %I)', p_table, p_table || '_pkey', p_column);
    FOREACH v_statement IN ARRAY v_indexes || v_constraints || v_triggers LOOP
        EXECUTE v_statement;
    END LOOP;

    EXECUTE format('CREATE TRIGGER partition_move_mark BEFORE UPDATE OF %I ON %I FOR EACH ROW'
                   ' WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION partition_move_mark()',
                   p_column, p_table, p_column, p_column);
    EXECUTE format('CREATE TRIGGER partition_move_clear AFTER UPDATE ON %I FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION partition_move_clear()', p_table);

    IF v_empty THEN
        EXECUTE format('DROP TABLE %I', v_legacy);
    ELSE
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)', p_table, v_legacy,
                       v_bound);
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', v_legacy, v_check);
    END IF;
    PERFORM ensure_partitions(p_table::regclass, 2);
    RETURN CASE WHEN v_empty THEN 'converted (empty)' ELSE format('converted; %s keeps the rows before %s', v_legacy, v_bound) END;
END;
$$;

-- The way back (the reverse migration): a plain table with the rows of every partition, the same columns,
-- identity sequence, indexes, foreign keys and triggers, and the primary key on id alone. Copies every row
-- under an ACCESS EXCLUSIVE lock: meant for development databases, not for a large live table.
CREATE OR REPLACE FUNCTION partition_unconvert(p_table text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_parent regclass := p_table::regclass;
    v_plain text := p_table || '_unpartitioned';
    v_next bigint;
    v_columns text;
    v_statements text[] := '{}';
    v_statement text;
    v_index record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = v_parent) THEN
        RETURN 'not partitioned';
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_parent);
    v_columns := partition_insert_columns(v_parent);
    EXECUTE format('SELECT greatest((SELECT max(id) FROM %s) + 1, (SELECT CASE WHEN is_called THEN last_value + 1'
                   ' ELSE last_value END FROM %s), 1)', v_parent, pg_get_serial_sequence(p_table, 'id'))
        INTO v_next;
    FOR v_index IN
        SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = v_parent AND NOT i.indisprimary
        ORDER BY ic.relname
    LOOP
        v_statements := v_statements || format('CREATE INDEX %I ON %I %s', v_index.name, p_table,
                                               substring(v_index.def FROM ' USING .*$'));
    END LOOP;
    SELECT v_statements || coalesce(array_agg(format('ALTER TABLE %I ADD CONSTRAINT %I %s', p_table, c.conname,
                                                     pg_get_constraintdef(c.oid)) ORDER BY c.conname), '{}')
    INTO v_statements
    FROM pg_constraint c WHERE c.conrelid = v_parent AND c.contype = 'f' AND c.conparentid = 0;
    SELECT v_statements || coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}') INTO v_statements
    FROM pg_trigger t WHERE t.tgrelid = v_parent AND NOT t.tgisinternal AND t.tgname NOT LIKE 'partition\_move\_%';

    EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED'
                   ' INCLUDING STORAGE INCLUDING COMMENTS)', v_plain, v_parent);
    EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM %s', v_plain, v_columns, v_columns, v_parent);
    EXECUTE format('DROP TABLE %s CASCADE', v_parent);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', v_plain, p_table);
    EXECUTE format('ALTER TABLE %I ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY'
                   ' (SEQUENCE NAME %I START WITH %s)', p_table, p_table || '_id_seq', v_next);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)', p_table, p_table || '_pkey');
    FOREACH v_statement IN ARRAY v_statements LOOP
        EXECUTE v_statement;
    END LOOP;
    RETURN 'unpartitioned';
END;
$$;

-- The build history's retention keeps its name and contract (one bounded batch per call, the rows it removed,
-- 0 when done): first whole partitions of build_events, build_metrics and build_logs lying entirely before the
-- cutoff are detached and dropped (one per table per call), then the partial month is cut in batches as before.
CREATE OR REPLACE FUNCTION cleanup_old_build_logs(p_days integer DEFAULT 90, p_batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_cutoff timestamptz;
    v_dropped bigint;
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

    v_dropped := partition_drop_before('build_events', v_cutoff) + partition_drop_before('build_metrics', v_cutoff)
                 + partition_drop_before('build_logs', v_cutoff);
    IF v_dropped > 0 THEN
        RETURN least(v_dropped, 2147483647)::integer;
    END IF;

    DELETE FROM build_events
    WHERE (id, created_at) IN (SELECT e.id, e.created_at FROM build_events e WHERE e.created_at < v_cutoff
                               LIMIT p_batch_size);
    GET DIAGNOSTICS v_events = ROW_COUNT;

    DELETE FROM build_metrics
    WHERE (id, recorded_at) IN (SELECT m.id, m.recorded_at FROM build_metrics m WHERE m.recorded_at < v_cutoff
                                LIMIT p_batch_size);
    GET DIAGNOSTICS v_metrics = ROW_COUNT;

    DELETE FROM build_logs
    WHERE (id, created_at) IN (SELECT l.id, l.created_at FROM build_logs l WHERE l.created_at < v_cutoff
                               LIMIT p_batch_size);
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
$$;
