ALTER TABLE build_queue DROP COLUMN IF EXISTS build_number;  -- drops the owned sequence too
DROP SEQUENCE IF EXISTS build_queue_build_number_seq;
