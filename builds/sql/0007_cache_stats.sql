-- Build cache statistics, eviction and integrity (docs/sql-api.md "Build cache").

-- fold_cache_hit_counters: move the hits counted in build_cache_hit_counters (by the update_cache_stats trigger,
-- one shard per session) into build_cache_registry.hit_count and last_accessed_at. Exact under concurrent hits: a
-- shard row updated while this runs is deleted in its latest version (READ COMMITTED follows the update) and its
-- RETURNING value is what is added; a hit committed after the DELETE's snapshot stays for the next fold. Returns
-- the number of entries updated.
CREATE OR REPLACE FUNCTION fold_cache_hit_counters()
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer;
BEGIN
    WITH moved AS (
        DELETE FROM build_cache_hit_counters RETURNING cache_entry_id, hits, last_accessed_at
    ), per_entry AS (
        SELECT m.cache_entry_id, sum(m.hits) AS hits, max(m.last_accessed_at) AS last_accessed_at
          FROM moved m GROUP BY m.cache_entry_id
    )
    UPDATE build_cache_registry e
       SET hit_count = e.hit_count + p.hits,
           last_accessed_at = greatest(e.last_accessed_at, p.last_accessed_at)
      FROM per_entry p
     WHERE e.id = p.cache_entry_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

-- cache_entry_usage: every entry's exact hit count and last access (folded counts plus unfolded shards), and
-- when it was last used (its creation when never hit), the key of least-recently-used eviction.
CREATE OR REPLACE VIEW cache_entry_usage AS
SELECT e.id AS cache_entry_id,
       e.hit_count + coalesce(s.hits, 0) AS hit_count,
       greatest(e.last_accessed_at, s.last_accessed_at) AS last_accessed_at,
       greatest(e.created_at, e.last_accessed_at, s.last_accessed_at) AS last_used_at
  FROM build_cache_registry e
  LEFT JOIN LATERAL (
      SELECT sum(c.hits) AS hits, max(c.last_accessed_at) AS last_accessed_at
        FROM build_cache_hit_counters c
       WHERE c.cache_entry_id = e.id
  ) s ON true;

-- get_cache_hit_rate: hits / (hits + misses) among the lookups logged since p_since, of one customer or of all
-- (p_customer_id NULL); 0 when there were none. Exact (numeric).
CREATE OR REPLACE FUNCTION get_cache_hit_rate(
    p_customer_id uuid DEFAULT NULL,
    p_since timestamptz DEFAULT now() - interval '30 days'
)
RETURNS numeric
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_hits bigint;
    v_total bigint;
BEGIN
    IF p_customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = p_customer_id) THEN
        RAISE EXCEPTION 'customer % does not exist', p_customer_id USING ERRCODE = 'P0002';
    END IF;
    SELECT count(*) FILTER (WHERE a.hit), count(*) INTO v_hits, v_total
      FROM build_access_log a
     WHERE a.accessed_at >= coalesce(p_since, '-infinity')
       AND (p_customer_id IS NULL OR a.customer_id = p_customer_id);
    IF v_total = 0 THEN
        RETURN 0;
    END IF;
    RETURN v_hits::numeric / v_total;
END;
$$;

-- cache_statistics: per customer (scope 'customer') and overall (scope 'overall', customer_id NULL): lookups,
-- hits, misses and hit rate over the retained access log (as the customer that looked up); live entries, shared
-- entries and bytes stored (as owner); time saved, the build durations of the entries its hits were served from;
-- id, the customer's id or 'overall' (the key of its read-only admin, builds.models.CacheStatistics).
CREATE OR REPLACE VIEW cache_statistics AS
WITH access AS (
    SELECT a.customer_id,
           count(*) FILTER (WHERE a.hit) AS hits,
           count(*) FILTER (WHERE NOT a.hit) AS misses,
           coalesce(sum(e.build_duration_ms) FILTER (WHERE a.hit), 0) AS time_saved_ms
      FROM build_access_log a
      LEFT JOIN build_cache_registry e ON e.id = a.cache_entry_id
     GROUP BY a.customer_id
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
    SELECT 'overall', NULL, coalesce(sum(p.hits), 0), coalesce(sum(p.misses), 0), coalesce(sum(p.time_saved_ms), 0),
           coalesce(sum(p.entries), 0), coalesce(sum(p.shared_entries), 0), coalesce(sum(p.bytes_stored), 0)
      FROM per_customer p
)
SELECT s.scope,
       s.customer_id,
       c.name AS customer_name,
       (s.hits + s.misses)::bigint AS lookups,
       s.hits::bigint AS hits,
       s.misses::bigint AS misses,
       CASE WHEN s.hits + s.misses > 0 THEN s.hits::numeric / (s.hits + s.misses) ELSE 0 END AS hit_rate,
       s.entries::bigint AS entries,
       s.shared_entries::bigint AS shared_entries,
       s.bytes_stored::bigint AS bytes_stored,
       s.time_saved_ms::bigint AS time_saved_ms,
       make_interval(secs => s.time_saved_ms / 1000.0) AS time_saved,
       coalesce(s.customer_id::text, 'overall') AS id
  FROM scoped s
  LEFT JOIN customers c ON c.id = s.customer_id;

-- cache_entry_in_use: whether a queued or running build depends on the entry (it was served from it, or it has
-- the entry's manifest hash and may be about to be served from, or refresh, it). Such an entry is never evicted.
CREATE OR REPLACE FUNCTION cache_entry_in_use(p_entry_id uuid, p_manifest_hash text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM build_queue b
         WHERE b.status IN ('queued', 'running')
           AND (b.cache_entry_id = p_entry_id OR b.manifest_hash = p_manifest_hash)
    );
$$;

-- evict_cache_entries: soft-delete (deleted_at) the live entries that are expired, older than p_max_age, or idle
-- (not used) for longer than p_max_idle, then the least recently used others until the live entries' total size
-- is at most p_max_total_bytes (NULL: no such limit). Never an entry in use (cache_entry_in_use). With p_dry_run
-- it changes nothing and returns what would go. Folds the hit counters first, so idle times are current. Takes a
-- transaction-level advisory lock: a second concurrent run raises instead of racing the first.
CREATE OR REPLACE FUNCTION evict_cache_entries(
    p_max_age interval DEFAULT NULL,
    p_max_idle interval DEFAULT NULL,
    p_max_total_bytes bigint DEFAULT NULL,
    p_dry_run boolean DEFAULT false
)
RETURNS TABLE(cache_entry_id uuid, manifest_hash text, owner_id uuid, reason text, size_bytes bigint,
              last_used_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_max_age < interval '0' OR p_max_idle < interval '0' THEN
        RAISE EXCEPTION 'eviction ages must not be negative' USING ERRCODE = 'P0001';
    END IF;
    IF p_max_total_bytes < 0 THEN
        RAISE EXCEPTION 'the cache size limit must be a non-negative number of bytes, got %', p_max_total_bytes
            USING ERRCODE = 'P0001';
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('evict_cache_entries')) THEN
        RAISE EXCEPTION 'cache eviction is already running' USING ERRCODE = 'P0001';
    END IF;
    IF NOT p_dry_run THEN
        PERFORM fold_cache_hit_counters();
    END IF;

    RETURN QUERY
    WITH live AS (
        SELECT e.id, e.manifest_hash, e.owner_id, e.size_bytes, e.created_at, e.expires_at, u.last_used_at,
               cache_entry_in_use(e.id, e.manifest_hash) AS in_use
          FROM build_cache_registry e
          JOIN cache_entry_usage u ON u.cache_entry_id = e.id
         WHERE e.deleted_at IS NULL
    ), by_rule AS (
        SELECT l.*,
               CASE WHEN l.in_use THEN NULL
                    WHEN l.expires_at <= now() THEN 'expired'
                    WHEN l.created_at < now() - p_max_age THEN 'age'
                    WHEN l.last_used_at < now() - p_max_idle THEN 'idle'
               END AS rule_reason
          FROM live l
    ), kept AS (
        SELECT coalesce(sum(b.size_bytes), 0) AS total FROM by_rule b WHERE b.rule_reason IS NULL
    ), lru AS (
        SELECT b.id, b.size_bytes,
               sum(b.size_bytes) OVER (ORDER BY b.last_used_at, b.id ROWS UNBOUNDED PRECEDING) AS freed_through
          FROM by_rule b
         WHERE b.rule_reason IS NULL AND NOT b.in_use
    ), chosen AS (
        SELECT b.id, b.rule_reason AS reason FROM by_rule b WHERE b.rule_reason IS NOT NULL
        UNION ALL
        SELECT l.id, 'size' FROM lru l, kept k
         WHERE p_max_total_bytes IS NOT NULL AND k.total - (l.freed_through - l.size_bytes) > p_max_total_bytes
    ), evicted AS (
        UPDATE build_cache_registry e
           SET deleted_at = now()
          FROM chosen c
         WHERE e.id = c.id AND NOT p_dry_run AND e.deleted_at IS NULL
        RETURNING e.id
    )
    SELECT l.id, l.manifest_hash::text, l.owner_id, c.reason, l.size_bytes, l.last_used_at
      FROM chosen c
      JOIN live l ON l.id = c.id
     WHERE p_dry_run OR EXISTS (SELECT 1 FROM evicted v WHERE v.id = c.id)
     ORDER BY l.last_used_at, l.id;
END;
$$;

-- verify_cache_entries: the live entries whose recorded content_sha256 no longer matches what they register now
-- (cache_content_sha256 over their image and their source build's image artifacts): artifacts changed, removed
-- or added, or the source build gone. An empty result means every entry verified.
CREATE OR REPLACE FUNCTION verify_cache_entries()
RETURNS TABLE(cache_entry_id uuid, manifest_hash text, owner_id uuid, recorded_sha256 text, actual_sha256 text,
              problem text)
LANGUAGE sql STABLE AS $$
    SELECT e.id, e.manifest_hash::text, e.owner_id, e.content_sha256::text, v.actual,
           CASE WHEN e.source_build_id IS NULL THEN 'source build is gone'
                ELSE 'content digest does not match the build''s image artifacts' END
      FROM build_cache_registry e
      CROSS JOIN LATERAL (
          SELECT cache_content_sha256(e.image_reference, e.image_digest, e.source_build_id) AS actual
      ) v
     WHERE e.deleted_at IS NULL AND v.actual <> e.content_sha256
     ORDER BY e.created_at, e.id;
$$;
