CREATE INDEX IF NOT EXISTS build_queue_customer_id_66cadc2d ON build_queue (customer_id);
CREATE INDEX IF NOT EXISTS build_queue_license_id_a2ded8f6 ON build_queue (license_id);
CREATE INDEX IF NOT EXISTS build_queue_cache_entry_id_f8273024 ON build_queue (cache_entry_id);
CREATE INDEX IF NOT EXISTS build_results_build_id_c5774602 ON build_results (build_id);
