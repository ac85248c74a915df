DROP FUNCTION IF EXISTS verify_cache_entries();
DROP FUNCTION IF EXISTS evict_cache_entries(interval, interval, bigint, boolean);
DROP FUNCTION IF EXISTS cache_entry_in_use(uuid, text);
DROP VIEW IF EXISTS cache_statistics;
DROP FUNCTION IF EXISTS get_cache_hit_rate(uuid, timestamptz);
DROP VIEW IF EXISTS cache_entry_usage;
DROP FUNCTION IF EXISTS fold_cache_hit_counters();
