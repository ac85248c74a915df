-- build_queue's single-column foreign-key indexes (Django's defaults) are written by every claim and completion
-- (non-HOT updates insert into each full index) but add nothing: build_queue_customer_idx (customer_id,
-- created_at DESC) and build_queue_license_month_idx (license_id, created_at) lead with the same columns, and only
-- cache hits have a cache_entry_id (build_queue_cache_entry_idx, partial, created by the same migration).
-- Likewise build_results (one row per completion): build_results_build_idx (build_id, created_at DESC) covers build_id.
DROP INDEX IF EXISTS build_queue_customer_id_66cadc2d;
DROP INDEX IF EXISTS build_queue_license_id_a2ded8f6;
DROP INDEX IF EXISTS build_queue_cache_entry_id_f8273024;
DROP INDEX IF EXISTS build_results_build_id_c5774602;
