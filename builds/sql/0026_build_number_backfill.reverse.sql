ALTER TABLE build_queue DROP CONSTRAINT IF EXISTS build_queue_build_number_key;
ALTER TABLE build_queue ALTER COLUMN build_number DROP NOT NULL;
