-- Back to builds 0031's partition_attach_new; a split under way is abandoned (its <table>_split tables dropped,
-- the mirror triggers on the legacy partitions removed: legacy still holds every row).
DO $$
DECLARE
    v_statement text;
BEGIN
    FOR v_statement IN
        SELECT format('DROP TRIGGER partition_split_mirror ON %s', t.tgrelid::regclass)
        FROM pg_trigger t WHERE t.tgname = 'partition_split_mirror'
        UNION ALL
        SELECT format('DROP TABLE %s', p.partrelid::regclass) FROM pg_partitioned_table p
        WHERE p.partrelid::regclass::text LIKE '%\_split'
    LOOP
        EXECUTE v_statement;
    END LOOP;
END $$;

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

DROP FUNCTION IF EXISTS partition_split_finish(regclass);
DROP FUNCTION IF EXISTS partition_split_copy(regclass, integer);
DROP FUNCTION IF EXISTS partition_split_prepare(regclass);
DROP FUNCTION IF EXISTS partition_split_ensure_month(regclass, timestamptz);
DROP FUNCTION IF EXISTS partition_split_mirror();
DROP FUNCTION IF EXISTS partition_legacy(regclass);
DROP FUNCTION IF EXISTS partition_create_table(regclass, text, text);
