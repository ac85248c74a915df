-- builds.0048_wrapper_plans, backwards: the wrappers as LANGUAGE sql functions again (builds/sql/0016_scheduler.sql).

CREATE OR REPLACE FUNCTION get_next_build_for_worker(p_worker_id text)
RETURNS SETOF build_queue
LANGUAGE sql VOLATILE ROWS 1 AS $$
    SELECT * FROM build_claim(p_worker_id, 1, false)
$$;

CREATE OR REPLACE FUNCTION claim_builds(p_worker_id text, p_limit integer)
RETURNS SETOF build_queue
LANGUAGE sql VOLATILE ROWS 10 AS $$
    SELECT * FROM build_claim(p_worker_id, p_limit, true)
$$;

CREATE OR REPLACE FUNCTION enqueue_build(p_customer_id uuid, p_manifest jsonb, p_priority integer, p_source text)
RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT e.build_id FROM build_enqueue(p_customer_id, p_manifest, p_priority, p_source, false) e
$$;

CREATE OR REPLACE FUNCTION enqueue_build_v2(p_customer_id uuid, p_manifest jsonb, p_priority integer DEFAULT 5,
                                            p_source text DEFAULT 'api')
RETURNS TABLE(build_id uuid, outcome text)
LANGUAGE sql VOLATILE AS $$
    SELECT e.build_id, e.outcome FROM build_enqueue(p_customer_id, p_manifest, p_priority, p_source, true) e
$$;
