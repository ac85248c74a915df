-- Reverse of 0039_cache_owner_index.sql.

CREATE INDEX IF NOT EXISTS build_cache_registry_owner_id_ebdad616 ON build_cache_registry (owner_id);
