DROP FUNCTION IF EXISTS get_license_quota_usage(uuid);
