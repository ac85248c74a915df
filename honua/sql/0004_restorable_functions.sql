-- A function that a CHECK constraint calls must not depend on the caller's search_path. pg_restore (and psql
-- running pg_dump's plain output) loads data with an empty search_path, under which manifest_hash could not find
-- manifest_canonical_json: COPY into build_manifests failed and a dump of any database with build manifests did
-- not restore (found by manage.py restore_drill). Its inner, recursive calls inherit this setting, so only the
-- entry point carries it. A later CREATE OR REPLACE of manifest_hash must keep the SET clause.
ALTER FUNCTION public.manifest_hash(jsonb) SET search_path = pg_catalog, public;
