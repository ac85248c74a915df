-- After the backfill: NOT NULL without a long exclusive lock (a NOT VALID check validated under a weaker lock
-- lets SET NOT NULL skip its scan), and the unique constraint on the index built concurrently just before.
-- The migration is not atomic (each statement commits), so the session, not a transaction, bounds lock waits.
SET lock_timeout = '5s';
ALTER TABLE build_queue ADD CONSTRAINT build_queue_build_number_not_null CHECK (build_number IS NOT NULL) NOT VALID;
ALTER TABLE build_queue VALIDATE CONSTRAINT build_queue_build_number_not_null;
ALTER TABLE build_queue ALTER COLUMN build_number SET NOT NULL;
ALTER TABLE build_queue DROP CONSTRAINT build_queue_build_number_not_null;
ALTER TABLE build_queue ADD CONSTRAINT build_queue_build_number_key UNIQUE USING INDEX build_queue_build_number_key;
RESET lock_timeout;
