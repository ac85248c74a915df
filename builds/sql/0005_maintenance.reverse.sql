DROP PROCEDURE IF EXISTS cleanup_old_build_logs_all(integer, integer);
DROP FUNCTION IF EXISTS cleanup_old_build_logs(integer, integer);
