-- Human build numbers (#12345): a per-installation sequence. Adding a nullable column without a default does not
-- rewrite the table; the default then applies to new rows only. Existing rows are numbered 1..n by the migration's
-- backfill (bounded batches in id order, UUIDv7 being time-ordered), so the sequence continues after them. The
-- count runs under the ADD COLUMN's lock, so no build is inserted between the count and the default.
CREATE SEQUENCE build_queue_build_number_seq AS bigint;
ALTER TABLE build_queue ADD COLUMN build_number bigint;
SELECT setval('build_queue_build_number_seq', count(*) + 1, false) FROM build_queue;
ALTER TABLE build_queue ALTER COLUMN build_number SET DEFAULT nextval('build_queue_build_number_seq');
ALTER SEQUENCE build_queue_build_number_seq OWNED BY build_queue.build_number;
