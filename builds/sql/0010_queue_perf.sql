-- Cheaper writes on build_queue (docs/performance.md, "Build queue").
--
-- build_uuid_v7(): a time-ordered UUID (RFC 9562 version 7: 48 bits of Unix milliseconds, then random bits), the
-- default of build_queue.id. New builds' keys sort after older ones, so inserts into the primary key and into the
-- build_id indexes of build_events and build_results append at the right edge instead of landing on random pages
-- that fall out of shared buffers as history grows. Core functions only (PostgreSQL 18's uuidv7() is not in 15).
CREATE OR REPLACE FUNCTION build_uuid_v7()
RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- Room on each page for HOT updates (heartbeats and progress reports change no indexed column once
-- build_queue_running_hb_idx is gone).
ALTER TABLE build_queue SET (fillfactor = 85);
