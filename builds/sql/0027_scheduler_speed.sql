-- Scheduler speed (issue 12): the claim + complete cycle without django-pgtrigger's per-row wrapper on build_queue
-- and without the counters' PL/pgSQL call chain on the two transitions every build makes.
--
-- New: build_queue_set_updated_at and build_queue_account_row (trigger functions the build_queue triggers execute
-- directly, builds.models.FunctionTrigger). The pgtrigger functions they replace are dropped by django-pgtrigger's
-- RemoveTrigger. build_queue_account, build_state_apply and build_member_apply (0016_scheduler.sql) are unchanged
-- and still do every transition but these two.


-- updated_at on every update of build_queue: what pgtrigger_update_updated_at_column did, minus the wrapper's
-- ignore check (an EXCEPTION block: one subtransaction per row, on each claim and each completion).
CREATE OR REPLACE FUNCTION build_queue_set_updated_at()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;


-- The counters' AFTER UPDATE trigger (its WHEN clause: a column the counters follow changed). The two transitions
-- of every build are done inline, one UPDATE each:
--   claim    queued -> running, same license, customer, priority, month and cache flag: the license state's
--            queued/urgent -1, running +1, virtual time + 1/weight (cap refreshed from the license), the member
--            state's queued/urgent -1 and virtual time + 1; the quota count does not change (counted both before
--            and after);
--   finish   running -> a final status, started_at kept: the license state's running -1 (cap refreshed), and the
--            "slot" wake-up when the license was at its cap with builds waiting; quota and member unchanged.
-- Everything else goes through build_queue_account(OLD, NEW) as before. A missing state row (never, while the
-- counters are right) also falls back to it, which creates the row.
CREATE OR REPLACE FUNCTION build_queue_account_row()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_running integer;
    v_queued integer;
    v_max integer;
BEGIN
    IF OLD.license_id = NEW.license_id AND OLD.customer_id = NEW.customer_id AND NOT OLD.cache_hit
       AND NOT NEW.cache_hit AND OLD.created_at = NEW.created_at AND OLD.priority = NEW.priority THEN
        IF OLD.status = 'queued' AND NEW.status = 'running' THEN
            UPDATE build_license_state s
            SET running = s.running + 1, queued = s.queued - 1,
                urgent_queued = s.urgent_queued - (NEW.priority >= 9)::integer,
                max_running = l.max_concurrent_builds,
                vtime = s.vtime + 1.0 / greatest(l.scheduling_weight, 1)
            FROM licenses l
            WHERE s.license_id = NEW.license_id AND l.id = NEW.license_id;
            IF FOUND THEN
                UPDATE build_member_state m
                SET queued = m.queued - 1, urgent_queued = m.urgent_queued - (NEW.priority >= 9)::integer,
                    vtime = m.vtime + 1
                WHERE m.license_id = NEW.license_id AND m.customer_id = NEW.customer_id;
                IF NOT FOUND THEN
                    PERFORM build_member_apply(NEW.license_id, NEW.customer_id, -1, -(NEW.priority >= 9)::integer,
                                               true);
                END IF;
                RETURN NULL;
            END IF;
        ELSIF OLD.status = 'running' AND NEW.status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
              AND NEW.started_at IS NOT NULL AND OLD.started_at IS NOT NULL THEN
            UPDATE build_license_state s
            SET running = s.running - 1, max_running = l.max_concurrent_builds
            FROM licenses l
            WHERE s.license_id = NEW.license_id AND l.id = NEW.license_id
            RETURNING s.running, s.queued, s.max_running INTO v_running, v_queued, v_max;
            IF FOUND THEN
                IF v_queued > 0 AND v_running + 1 >= v_max THEN
                    PERFORM build_notify('slot', NULL, NEW.license_id, NULL);
                END IF;
                RETURN NULL;
            END IF;
        END IF;
    END IF;
    PERFORM build_queue_account(OLD, NEW);
    RETURN NULL;
END;
$$;


-- cache_content_sha256: 0003_cache.sql's contract and result, in PL/pgSQL. As a SQL function with a subquery it
-- was never inlined and was planned again on every call (about 0.1 ms, the larger part of register_build_in_cache,
-- which every succeeded completion runs); PL/pgSQL keeps the plan for the session.
CREATE OR REPLACE FUNCTION cache_content_sha256(p_image_reference text, p_image_digest text, p_build_id uuid)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_artifacts text;
BEGIN
    SELECT string_agg(a.sha256 || ' ' || a.size_bytes || ' ' || a.uri, E'\n' ORDER BY a.sha256, a.uri, a.size_bytes)
    INTO v_artifacts
    FROM build_artifacts a
    WHERE a.build_id = p_build_id AND a.kind = 'image';
    RETURN encode(sha256(convert_to(
        p_image_reference || E'\n' || p_image_digest || E'\n' || coalesce(v_artifacts, ''), 'UTF8')), 'hex');
END;
$$;


-- The counter rows take two or three new versions per claim + complete. Page pruning needs a moment when no
-- other backend has the page pinned, which busy claimers (each scanning build_license_state) rarely leave, so
-- the tables grow and the claim's scan of build_license_state with them (about 0.3 us a page; 516 pages for 109
-- licenses after one quick bench run). Vacuum them as soon as a few thousand versions are dead, without the
-- cost-based delay, so freed space is reused and empty tail pages are truncated. And spread the license and member
-- rows over more pages (fillfactor 10, about a dozen rows a page instead of 60): fewer claimers pin each page, so
-- pruning finds its moment more often (in one 8-second run at 16 clients build_license_state grew from 3 to 54
-- pages at fillfactor 50, from 11 to 16 at 10). CLUSTER rewrites the existing rows (small tables).
ALTER TABLE build_license_state SET (fillfactor = 10);
ALTER TABLE build_member_state SET (fillfactor = 10);
CLUSTER build_license_state USING build_license_state_pkey;
CLUSTER build_member_state USING build_member_state_pkey;
ALTER TABLE build_license_state SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                                     autovacuum_vacuum_cost_delay = 0);
ALTER TABLE build_member_state SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                                    autovacuum_vacuum_cost_delay = 0);
ALTER TABLE build_quota_usage SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                                   autovacuum_vacuum_cost_delay = 0);
