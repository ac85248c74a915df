DROP FUNCTION IF EXISTS index_bloat_estimate();
DROP FUNCTION IF EXISTS archive_build_access_log(integer, integer);
DROP PROCEDURE IF EXISTS purge_soft_deleted_records_all(integer, integer);
DROP FUNCTION IF EXISTS purge_soft_deleted_records(integer, integer);
