DROP FUNCTION IF EXISTS registry_credential_require_room(uuid, uuid);
DROP FUNCTION IF EXISTS license_require_sub_customers_kept(uuid);
DROP FUNCTION IF EXISTS customer_require_parent(uuid, text, uuid);
DROP FUNCTION IF EXISTS customer_entitled_license_id(uuid);
DROP FUNCTION IF EXISTS customer_usable_license_id(uuid);
DROP FUNCTION IF EXISTS license_features_include(jsonb, text);
