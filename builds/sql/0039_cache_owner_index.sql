-- builds.0039_cache_owner_index: build_cache_registry's single-column owner_id index goes; build_cache_owner_idx
-- (owner_id, created_at DESC) leads with the same column and serves the foreign key's checks and owner lookups.
-- Only the index: the foreign key itself is not touched (re-adding it would re-check every row under lock).

DROP INDEX IF EXISTS build_cache_registry_owner_id_ebdad616;
