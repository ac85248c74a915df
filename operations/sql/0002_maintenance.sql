-- purge_soft_deleted_records: permanently delete rows soft-deleted (deleted_at) more than p_days ago, ONE BOUNDED
-- BATCH per call (up to p_batch_size rows of each table); returns the rows deleted by this call. Call it again
-- until it returns 0 (run_maintenance does, one transaction per batch): resumable after a kill, never a giant
-- transaction, and rows someone holds locked are skipped (SKIP LOCKED) rather than waited on.
--   conversations: deleted with their messages, intents, extractions and manifests (all belong to it);
--   build cache entries: builds that were served from one forget it (cache_entry_id set to null, as declared);
--   registry credentials: deleted;
--   licenses and customers: deleted only once nothing references them any more (builds keep their license and
--   customer, as the schema's PROTECT says); until then they stay soft-deleted.
CREATE OR REPLACE FUNCTION purge_soft_deleted_records(p_days integer DEFAULT 30, p_batch_size integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_cutoff timestamptz;
    v_ids uuid[];
    v_rows integer;
    v_total integer := 0;
BEGIN
    IF p_days IS NULL OR p_days < 0 THEN
        RAISE EXCEPTION 'retention must be zero or more days, got %', coalesce(p_days::text, 'null')
            USING ERRCODE = 'P0001', HINT = 'purge_soft_deleted_records(30) keeps soft-deleted rows for 30 days';
    END IF;
    IF p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION 'batch size must be at least 1, got %', coalesce(p_batch_size::text, 'null')
            USING ERRCODE = 'P0001';
    END IF;
    v_cutoff := now() - make_interval(days => p_days);

    -- Conversations and everything that belongs to them.
    SELECT array_agg(id) INTO v_ids FROM (
        SELECT c.id FROM conversations c WHERE c.deleted_at < v_cutoff
        ORDER BY c.deleted_at LIMIT p_batch_size FOR UPDATE SKIP LOCKED
    ) doomed;
    IF v_ids IS NOT NULL THEN
        DELETE FROM conversation_messages WHERE conversation_id = ANY (v_ids);
        GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;
        DELETE FROM conversation_intents WHERE conversation_id = ANY (v_ids);
        GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;
        DELETE FROM requirement_extractions WHERE conversation_id = ANY (v_ids);
        GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;
        DELETE FROM build_manifests WHERE conversation_id = ANY (v_ids);
        GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;
        DELETE FROM conversations WHERE id = ANY (v_ids);
        GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;
    END IF;

    -- Build cache entries.
    SELECT array_agg(id) INTO v_ids FROM (
        SELECT e.id FROM build_cache_registry e WHERE e.deleted_at < v_cutoff
        ORDER BY e.deleted_at LIMIT p_batch_size FOR UPDATE SKIP LOCKED
    ) doomed;
    IF v_ids IS NOT NULL THEN
        UPDATE build_queue SET cache_entry_id = NULL WHERE cache_entry_id = ANY (v_ids);
        DELETE FROM build_cache_registry WHERE id = ANY (v_ids);
        GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;
    END IF;

    -- Registry credentials.
    DELETE FROM registry_credentials WHERE id IN (
        SELECT r.id FROM registry_credentials r WHERE r.deleted_at < v_cutoff
        ORDER BY r.deleted_at LIMIT p_batch_size FOR UPDATE SKIP LOCKED
    );
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;

    -- Licenses no build refers to.
    DELETE FROM licenses WHERE id IN (
        SELECT l.id FROM licenses l
        WHERE l.deleted_at < v_cutoff
          AND NOT EXISTS (SELECT 1 FROM build_queue b WHERE b.license_id = l.id)
        ORDER BY l.deleted_at LIMIT p_batch_size FOR UPDATE SKIP LOCKED
    );
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;

    -- Customers nothing refers to any more.
    DELETE FROM customers WHERE id IN (
        SELECT c.id FROM customers c
        WHERE c.deleted_at < v_cutoff
          AND NOT EXISTS (SELECT 1 FROM licenses l WHERE l.customer_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM registry_credentials r WHERE r.customer_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM build_queue b WHERE b.customer_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM build_cache_registry e WHERE e.owner_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM conversations v WHERE v.customer_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM build_manifests m WHERE m.customer_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM customers s WHERE s.parent_id = c.id)
        ORDER BY c.deleted_at LIMIT p_batch_size FOR UPDATE SKIP LOCKED
    );
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_total := v_total + v_rows;

    RETURN v_total;
END;
$$;

CREATE OR REPLACE PROCEDURE purge_soft_deleted_records_all(p_days integer DEFAULT 30, p_batch_size integer DEFAULT 1000)
LANGUAGE plpgsql AS $$
BEGIN
    WHILE purge_soft_deleted_records(p_days, p_batch_size) > 0 LOOP
        COMMIT;
    END LOOP;
END;
$$;

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

-- index_bloat_estimate: every B-tree index's size against the size its live entries need, estimated from the
-- catalog statistics (pg_class, pg_stats): no scan, so it is cheap on a busy system. The estimate ignores
-- per-column nulls and padding between columns; it is a pointer to REINDEX CONCURRENTLY, not a measurement.
CREATE OR REPLACE FUNCTION index_bloat_estimate()
RETURNS TABLE(
    index_name text, table_name text, index_bytes bigint, expected_bytes bigint, bloat_bytes bigint,
    bloat_ratio numeric
)
LANGUAGE sql STABLE AS $$
    WITH idx AS (
        SELECT ic.oid, ic.relname::text AS index_name, tc.relname::text AS table_name, n.nspname,
               ic.relpages, ic.reltuples, i.indrelid, i.indkey::int2[] AS keys,
               current_setting('block_size')::numeric AS block_size,
               coalesce(substring(array_to_string(ic.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::numeric, 90)
                   AS fillfactor
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class tc ON tc.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        JOIN pg_am am ON am.oid = ic.relam
        WHERE am.amname = 'btree' AND n.nspname = current_schema() AND ic.relpages > 1 AND ic.reltuples >= 0
    ), widths AS (
        SELECT idx.oid, sum(coalesce(s.avg_width, 8))::numeric AS key_width
        FROM idx
        CROSS JOIN LATERAL unnest(idx.keys) AS k(attnum)
        LEFT JOIN pg_attribute a ON a.attrelid = idx.indrelid AND a.attnum = k.attnum
        LEFT JOIN pg_stats s ON s.schemaname = idx.nspname AND s.tablename = idx.table_name AND s.attname = a.attname
        GROUP BY idx.oid
    ), estimate AS (
        SELECT idx.*,
               -- leaf entries: 8-byte tuple header + key (8-byte aligned) + 4-byte line pointer, in pages of
               -- (block - 24 header - 16 special) bytes filled to fillfactor; plus the metapage.
               1 + ceil(idx.reltuples::numeric * (ceil((8 + w.key_width) / 8) * 8 + 4)
                        / ((idx.block_size - 40) * idx.fillfactor / 100)) AS expected_pages
        FROM idx JOIN widths w ON w.oid = idx.oid
    )
    SELECT index_name, table_name,
           (relpages * block_size)::bigint,
           (expected_pages * block_size)::bigint,
           greatest(relpages - expected_pages, 0)::bigint * block_size::bigint,
           round(greatest(relpages - expected_pages, 0) / relpages::numeric, 3)
    FROM estimate
    ORDER BY greatest(relpages - expected_pages, 0) DESC, index_name;
$$;
