-- builds.0048_wrapper_plans: the SQL API's thin wrappers over the queue's functions in PL/pgSQL, so that their one
-- statement is planned once per connection instead of on every call.
--
-- get_next_build_for_worker, claim_builds, enqueue_build and enqueue_build_v2 were LANGUAGE sql functions whose
-- body reads another function in FROM. PostgreSQL inlines neither (a volatile set-returning function, or a scalar
-- one whose body has a FROM clause), so every call parsed, analysed and planned its body again: 55 us of server CPU
-- per claim on the queue benchmark's cycle against 13 us for the same wrapper in PL/pgSQL, whose plan is cached.
-- Same names, arguments, defaults, results, row estimates and errors (the errors are raised by the functions they
-- wrap).

CREATE OR REPLACE FUNCTION get_next_build_for_worker(p_worker_id text)
RETURNS SETOF build_queue
LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
BEGIN
    RETURN QUERY SELECT * FROM build_claim(p_worker_id, 1, false);
END;
$$;

CREATE OR REPLACE FUNCTION claim_builds(p_worker_id text, p_limit integer)
RETURNS SETOF build_queue
LANGUAGE plpgsql VOLATILE ROWS 10 AS $$
BEGIN
    RETURN QUERY SELECT * FROM build_claim(p_worker_id, p_limit, true);
END;
$$;

CREATE OR REPLACE FUNCTION enqueue_build(p_customer_id uuid, p_manifest jsonb, p_priority integer, p_source text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT e.build_id FROM build_enqueue(p_customer_id, p_manifest, p_priority, p_source, false) e LIMIT 1);
END;
$$;

CREATE OR REPLACE FUNCTION enqueue_build_v2(p_customer_id uuid, p_manifest jsonb, p_priority integer DEFAULT 5,
                                            p_source text DEFAULT 'api')
RETURNS TABLE(build_id uuid, outcome text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
        SELECT e.build_id, e.outcome FROM build_enqueue(p_customer_id, p_manifest, p_priority, p_source, true) e;
END;
$$;
