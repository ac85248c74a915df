ALTER TABLE build_queue RESET (fillfactor);
DROP FUNCTION IF EXISTS build_uuid_v7();
