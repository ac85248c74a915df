DROP FUNCTION IF EXISTS revoke_expired_credentials(integer);
DROP FUNCTION IF EXISTS expire_licenses();
