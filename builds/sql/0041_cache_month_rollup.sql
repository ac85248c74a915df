-- builds.0041_cache_month_rollup: the cache access rollup is kept per UTC month and partitioned by it, and
-- cache_statistics reads one row per customer and month.
--
-- Before: build_cache_access_rollup held one folded row per (customer, entry) ever looked up, and the view joined
-- every one of them with the registry to price the hits at the entries' current durations (3.1 million rows at
-- ten times the seed); a month archived whole was subtracted from it, one upsert per (customer, entry) the month
-- saw (14 s at ten times the seed). Now:
--   * build_cache_access_rollup is keyed by (month, customer, entry, shard) and partitioned by month like the log
--     (partitions created ahead by maintain_partitions, a DEFAULT one): a month archived whole leaves it by a
--     partition drop (cache_access_rollup_retire_month), with no arithmetic;
--   * build_cache_access_monthly holds one row per (month, customer): the folded hits and misses and the time
--     they saved at the entries' current durations. fold_cache_access_rollup adds the folded shards to it, priced
--     with the entries locked (FOR SHARE) against a change of duration until its commit; the
--     build_cache_access_reprice trigger on the registry adds (new - old duration) x the entry's folded hits when a
--     duration changes, and takes a deleted entry's out, so both always agree with pricing every hit now;
--   * cache_statistics reads build_cache_access_monthly plus the shards not folded yet (the lookups since the last
--     hourly fold), which it prices as it reads them, and the owners' storage from an index-only scan of
--     build_cache_owner_storage_idx.
-- The semantics are unchanged: the view counts the retained log, priced at each entry's current duration.
--
-- The triggers dropped before this file lock build_access_log until the commit, so the recount below sees every
-- lookup once; the registry is locked against writes (SHARE ROW EXCLUSIVE: lookups read it on) so no duration
-- changes between the pricing below and the creation of the reprice triggers.

LOCK TABLE build_cache_registry IN SHARE ROW EXCLUSIVE MODE;

-- Folding and retiring a month of the rollup take this lock, so a month's rows are not folded while they are
-- being deleted (a fold would otherwise re-insert rows of a month the archive just removed).
CREATE OR REPLACE FUNCTION cache_access_rollup_lock() RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtext('build_cache_access_rollup'))
$$;

-- The rollup and its per-customer months recounted from the retained log and priced at the registry's current
-- durations, each month in its partition. Used by this migration and by the seed (which loads the log with its
-- triggers off). The caller keeps lookups out meanwhile (a lock on build_access_log).
CREATE OR REPLACE FUNCTION cache_access_rollup_recount() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_rows bigint;
    v_month timestamptz;
BEGIN
    PERFORM cache_access_rollup_lock();
    DELETE FROM build_cache_access_rollup;
    DELETE FROM build_cache_access_monthly;
    DROP TABLE IF EXISTS pg_temp.cache_access_recount;
    CREATE TEMPORARY TABLE cache_access_recount ON COMMIT DROP AS
    SELECT date_trunc('month', l.accessed_at, 'UTC') AS month, l.customer_id, l.cache_entry_id,
           count(*) FILTER (WHERE l.hit) AS hits, count(*) FILTER (WHERE NOT l.hit) AS misses
      FROM build_access_log l
     GROUP BY 1, 2, 3;
    FOR v_month IN SELECT DISTINCT r.month FROM pg_temp.cache_access_recount r LOOP
        PERFORM partition_create_month('build_cache_access_rollup', v_month);
    END LOOP;
    -- In the unique key's order: its index is filled page after page, not at random.
    INSERT INTO build_cache_access_rollup (month, customer_id, cache_entry_id, shard, hits, misses)
    SELECT r.month, r.customer_id, r.cache_entry_id, -1, r.hits, r.misses
      FROM pg_temp.cache_access_recount r
     ORDER BY r.month, r.customer_id, r.cache_entry_id;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    INSERT INTO build_cache_access_monthly (month, customer_id, hits, misses, time_saved_ms)
    SELECT r.month, r.customer_id, sum(r.hits), sum(r.misses), coalesce(sum(r.hits * e.build_duration_ms), 0)
      FROM pg_temp.cache_access_recount r
      LEFT JOIN build_cache_registry e ON e.id = r.cache_entry_id
     GROUP BY 1, 2;
    DROP TABLE pg_temp.cache_access_recount;
    RETURN v_rows;
END;
$$;

-- The rollup, partitioned by month. Its rows were one per (customer, entry) without the month: it is recounted
-- from the log below, so the old table goes (with the view that reads it, re-created at the end of this file). The
-- keys and indexes are built after the load, each one sorted build per partition (at ten times the seed, 3.5
-- million rows inserted into the indexes one by one took minutes, under the lock on build_access_log). The unique
-- key is a unique index, not a constraint: a month's partition created later (partition_create_table) comes with
-- a unique index of its own, which PostgreSQL attaches to a unique index of the parent but not to a constraint's.
DROP VIEW cache_statistics;
DROP TABLE build_cache_access_rollup;
CREATE TABLE build_cache_access_rollup (
    id bigint GENERATED BY DEFAULT AS IDENTITY,
    month timestamptz NOT NULL,
    customer_id uuid NOT NULL,
    cache_entry_id uuid,
    shard smallint NOT NULL,
    hits bigint NOT NULL,
    misses bigint NOT NULL,
    CONSTRAINT build_cache_access_rollup_shard CHECK (shard >= -1 AND shard < 64)
) PARTITION BY RANGE (month);
SELECT ensure_partitions('build_cache_access_rollup', 2);
SELECT cache_access_rollup_recount();
ALTER TABLE build_cache_access_rollup ADD CONSTRAINT build_cache_access_rollup_pkey PRIMARY KEY (id, month);
CREATE UNIQUE INDEX build_cache_access_rollup_month_key
    ON build_cache_access_rollup (month, customer_id, cache_entry_id, shard) NULLS NOT DISTINCT;
CREATE INDEX build_cache_access_delta_idx ON build_cache_access_rollup (shard) WHERE shard >= 0;
CREATE INDEX build_cache_access_entry_idx ON build_cache_access_rollup (cache_entry_id) WHERE shard = -1;
-- The partitions' indexes named as partition_create_table names those of a month created later.
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT ci.relname AS child, pi.relname AS parent, substring(ct.relname FROM '_(p[0-9]{6}|default)$') AS suffix
          FROM pg_inherits i
          JOIN pg_class ci ON ci.oid = i.inhrelid
          JOIN pg_class pi ON pi.oid = i.inhparent
          JOIN pg_index x ON x.indexrelid = ci.oid
          JOIN pg_class ct ON ct.oid = x.indrelid
         WHERE pi.relname IN ('build_cache_access_rollup_month_key', 'build_cache_access_delta_idx',
                              'build_cache_access_entry_idx')
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', v.child, left(v.parent, 62 - length(v.suffix)) || '_' || v.suffix);
    END LOOP;
END
$$;

-- Shards into the folded rows (shard -1) and into the months of build_cache_access_monthly. Returns how many shard
-- rows it folded. Exact under concurrent lookups for the same reason as before (DELETE ... RETURNING takes only
-- the committed shards' rows it deletes), and under concurrent changes of an entry's duration: the entries whose
-- hits it prices are locked FOR SHARE first, which waits for a change in flight (and then reads its new duration)
-- and makes a later change wait for this commit (its trigger then sees these hits folded and reprices them).
CREATE OR REPLACE FUNCTION fold_cache_access_rollup() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
    v_empty bigint[];
    v_months timestamptz[];
    v_customers uuid[];
    v_entries uuid[];
    v_hits bigint[];
    v_misses bigint[];
BEGIN
    PERFORM cache_access_rollup_lock();
    WITH moved AS (
        DELETE FROM build_cache_access_rollup r WHERE r.shard >= 0
        RETURNING r.month, r.customer_id, r.cache_entry_id, r.hits, r.misses
    ), summed AS (
        SELECT m.month, m.customer_id, m.cache_entry_id, sum(m.hits) AS hits, sum(m.misses) AS misses
          FROM moved m
         GROUP BY m.month, m.customer_id, m.cache_entry_id
    ), folded AS (
        INSERT INTO build_cache_access_rollup AS r (month, customer_id, cache_entry_id, shard, hits, misses)
        SELECT s.month, s.customer_id, s.cache_entry_id, -1, s.hits, s.misses FROM summed s
        ON CONFLICT (month, customer_id, cache_entry_id, shard) DO UPDATE
            SET hits = r.hits + EXCLUDED.hits, misses = r.misses + EXCLUDED.misses
        RETURNING r.id, r.hits, r.misses
    )
    SELECT (SELECT count(*) FROM moved),
           (SELECT array_agg(f.id) FROM folded f WHERE f.hits = 0 AND f.misses = 0),
           (SELECT array_agg(s.month) FROM summed s), (SELECT array_agg(s.customer_id) FROM summed s),
           (SELECT array_agg(s.cache_entry_id) FROM summed s), (SELECT array_agg(s.hits) FROM summed s),
           (SELECT array_agg(s.misses) FROM summed s)
      INTO v_count, v_empty, v_months, v_customers, v_entries, v_hits, v_misses;
    IF v_count = 0 THEN
        RETURN 0;
    END IF;
    IF v_empty IS NOT NULL THEN
        DELETE FROM build_cache_access_rollup r WHERE r.id = ANY (v_empty) AND r.hits = 0 AND r.misses = 0;
    END IF;

    WITH priced AS (
        SELECT e.id, e.build_duration_ms FROM build_cache_registry e
         WHERE e.id = ANY (v_entries)
         ORDER BY e.id
           FOR SHARE
    ), added AS (
        INSERT INTO build_cache_access_monthly AS m (month, customer_id, hits, misses, time_saved_ms)
        SELECT u.month, u.customer_id, sum(u.hits), sum(u.misses), coalesce(sum(u.hits * p.build_duration_ms), 0)
          FROM unnest(v_months, v_customers, v_entries, v_hits, v_misses)
               AS u(month, customer_id, cache_entry_id, hits, misses)
          LEFT JOIN priced p ON p.id = u.cache_entry_id
         GROUP BY u.month, u.customer_id
         ORDER BY u.month, u.customer_id
        ON CONFLICT (month, customer_id) DO UPDATE
            SET hits = m.hits + EXCLUDED.hits, misses = m.misses + EXCLUDED.misses,
                time_saved_ms = m.time_saved_ms + EXCLUDED.time_saved_ms
        RETURNING m.id, m.hits, m.misses
    )
    SELECT array_agg(a.id) INTO v_empty FROM added a WHERE a.hits = 0 AND a.misses = 0;
    IF v_empty IS NOT NULL THEN
        DELETE FROM build_cache_access_monthly m WHERE m.id = ANY (v_empty) AND m.hits = 0 AND m.misses = 0;
    END IF;
    RETURN v_count;
END;
$$;

-- A month of the access log archived whole (operations' access_log_archive_move_month) stops counting: the
-- rollup's partition of that month is detached and dropped (its rows in DEFAULT, normally none, are deleted), and
-- the customers' rows of that month are deleted (one per customer). Returns whether a partition was dropped. The
-- DETACH locks the rollup (ACCESS EXCLUSIVE) until the commit: the caller has locked build_access_log first, so no
-- lookup holds the rollup meanwhile.
CREATE OR REPLACE FUNCTION cache_access_rollup_retire_month(p_month timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_partition regclass;
BEGIN
    IF p_month IS NULL OR p_month <> date_trunc('month', p_month, 'UTC') THEN
        RAISE EXCEPTION 'a month starts at 00:00 UTC on its first day, got %', coalesce(p_month::text, 'null')
            USING ERRCODE = 'P0001';
    END IF;
    PERFORM cache_access_rollup_lock();
    SELECT b.partition INTO v_partition FROM partition_bounds('build_cache_access_rollup') b
     WHERE NOT b.is_default AND b.lower_bound = p_month AND b.upper_bound = p_month + interval '1 month';
    IF v_partition IS NOT NULL THEN
        EXECUTE format('ALTER TABLE build_cache_access_rollup DETACH PARTITION %s', v_partition);
        EXECUTE format('DROP TABLE %s', v_partition);
    END IF;
    DELETE FROM build_cache_access_rollup r WHERE r.month >= p_month AND r.month < p_month + interval '1 month';
    DELETE FROM build_cache_access_monthly m WHERE m.month = p_month;
    RETURN v_partition IS NOT NULL;
END;
$$;

-- Adds p_ms x each customer-month's folded hits of entry p_entry to its time saved. The rows are locked in one
-- order first, so two changes of entries hit by the same customers cannot deadlock.
CREATE OR REPLACE FUNCTION build_cache_access_price(p_entry uuid, p_ms bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_entry IS NULL OR coalesce(p_ms, 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1
       FROM build_cache_access_monthly m
      WHERE (m.month, m.customer_id) IN (SELECT r.month, r.customer_id FROM build_cache_access_rollup r
                                          WHERE r.cache_entry_id = p_entry AND r.shard = -1)
      ORDER BY m.month, m.customer_id
        FOR UPDATE;
    UPDATE build_cache_access_monthly m
       SET time_saved_ms = m.time_saved_ms + d.saved
      FROM (SELECT r.month, r.customer_id, sum(r.hits) * p_ms AS saved
              FROM build_cache_access_rollup r
             WHERE r.cache_entry_id = p_entry AND r.shard = -1
             GROUP BY r.month, r.customer_id) d
     WHERE m.month = d.month AND m.customer_id = d.customer_id AND d.saved <> 0;
END;
$$;

-- Row trigger on build_cache_registry (insert, delete, and an update of its id or build_duration_ms): the entry's
-- folded hits are repriced, so time saved is always the hits x the entries' current durations (a deleted entry
-- saves nothing, as in the view's LEFT JOIN).
CREATE OR REPLACE FUNCTION build_cache_access_reprice() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.id = NEW.id THEN
        PERFORM build_cache_access_price(NEW.id, coalesce(NEW.build_duration_ms, 0)
                                                 - coalesce(OLD.build_duration_ms, 0));
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM build_cache_access_price(OLD.id, -coalesce(OLD.build_duration_ms, 0));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM build_cache_access_price(NEW.id, coalesce(NEW.build_duration_ms, 0));
    END IF;
    RETURN NULL;
END;
$$;

-- Statement trigger after TRUNCATE build_cache_registry: no entry is left, no hit saves anything.
CREATE OR REPLACE FUNCTION build_cache_access_unprice() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE build_cache_access_monthly SET time_saved_ms = 0 WHERE time_saved_ms <> 0;
    RETURN NULL;
END;
$$;

CREATE VIEW cache_statistics AS
WITH access AS (
    SELECT a.customer_id, sum(a.hits) AS hits, sum(a.misses) AS misses, sum(a.time_saved_ms) AS time_saved_ms
      FROM (SELECT m.customer_id, m.hits, m.misses, m.time_saved_ms
              FROM build_cache_access_monthly m
            UNION ALL
            -- The lookups since the last fold, priced as they are read.
            SELECT r.customer_id, r.hits, r.misses, r.hits * coalesce(e.build_duration_ms, 0)
              FROM build_cache_access_rollup r
              LEFT JOIN build_cache_registry e ON e.id = r.cache_entry_id
             WHERE r.shard >= 0) a
     GROUP BY a.customer_id
    HAVING sum(a.hits) + sum(a.misses) > 0
), storage AS (
    SELECT e.owner_id AS customer_id,
           count(*) AS entries,
           count(*) FILTER (WHERE e.visibility = 'shared') AS shared_entries,
           sum(e.size_bytes) AS bytes_stored
      FROM build_cache_registry e
     WHERE e.deleted_at IS NULL
     GROUP BY e.owner_id
), per_customer AS (
    SELECT coalesce(a.customer_id, s.customer_id) AS customer_id,
           coalesce(a.hits, 0) AS hits,
           coalesce(a.misses, 0) AS misses,
           coalesce(a.time_saved_ms, 0) AS time_saved_ms,
           coalesce(s.entries, 0) AS entries,
           coalesce(s.shared_entries, 0) AS shared_entries,
           coalesce(s.bytes_stored, 0) AS bytes_stored
      FROM access a
      FULL JOIN storage s ON s.customer_id = a.customer_id
), scoped AS (
    SELECT 'customer'::text AS scope, p.customer_id, p.hits, p.misses, p.time_saved_ms, p.entries,
           p.shared_entries, p.bytes_stored
      FROM per_customer p
    UNION ALL
    SELECT 'overall', NULL::uuid, coalesce(sum(p.hits), 0), coalesce(sum(p.misses), 0),
           coalesce(sum(p.time_saved_ms), 0), coalesce(sum(p.entries), 0), coalesce(sum(p.shared_entries), 0),
           coalesce(sum(p.bytes_stored), 0)
      FROM per_customer p
)
SELECT s.scope,
       s.customer_id,
       c.name AS customer_name,
       (s.hits + s.misses)::bigint AS lookups,
       s.hits::bigint AS hits,
       s.misses::bigint AS misses,
       CASE WHEN s.hits + s.misses > 0 THEN s.hits / (s.hits + s.misses) ELSE 0 END AS hit_rate,
       s.entries::bigint AS entries,
       s.shared_entries::bigint AS shared_entries,
       s.bytes_stored::bigint AS bytes_stored,
       s.time_saved_ms::bigint AS time_saved_ms,
       make_interval(secs => s.time_saved_ms / 1000.0) AS time_saved,
       coalesce(s.customer_id::text, 'overall') AS id
  FROM scoped s
  LEFT JOIN customers c ON c.id = s.customer_id;
