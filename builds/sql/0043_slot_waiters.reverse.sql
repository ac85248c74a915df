-- Reverse of 0043_slot_waiters.sql: the slot wake-up on every completion that frees a capped license's slot, as
-- 0027_scheduler_speed and 0016_scheduler defined the two functions; no waiter registry.

CREATE OR REPLACE FUNCTION public.build_queue_account_row()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.build_state_apply(p_license_id uuid, p_queued integer, p_urgent integer, p_running integer, p_claim boolean)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_running integer;
    v_queued integer;
    v_max integer;
BEGIN
    FOR i IN 1..2 LOOP
        UPDATE build_license_state s
        SET max_running = (SELECT l.max_concurrent_builds FROM licenses l WHERE l.id = p_license_id),
            running = s.running + p_running,
            queued = s.queued + p_queued,
            urgent_queued = s.urgent_queued + p_urgent,
            vtime = CASE
                WHEN p_claim THEN
                    s.vtime + 1.0 / (SELECT greatest(l.scheduling_weight, 1) FROM licenses l WHERE l.id = p_license_id)
                WHEN s.queued = 0 AND p_queued > 0 THEN
                    greatest(s.vtime, coalesce((SELECT min(x.vtime) FROM build_license_state x WHERE x.queued > 0),
                                               s.vtime))
                ELSE s.vtime END
        WHERE s.license_id = p_license_id
        RETURNING s.running, s.queued, s.max_running INTO v_running, v_queued, v_max;
        EXIT WHEN FOUND;
        INSERT INTO build_license_state (license_id, running, queued, urgent_queued, vtime, max_running)
        VALUES (p_license_id, 0, 0, 0,
                coalesce((SELECT min(x.vtime) FROM build_license_state x WHERE x.queued > 0), 0), 1)
        ON CONFLICT (license_id) DO NOTHING;
    END LOOP;
    IF p_running < 0 AND v_queued > 0 AND v_running - p_running >= v_max THEN
        PERFORM build_notify('slot', NULL, p_license_id, NULL);
    END IF;
END;
$function$;

DROP FUNCTION IF EXISTS build_slot_awaited();
DROP FUNCTION IF EXISTS build_wait_end(text);
DROP FUNCTION IF EXISTS build_wait(text);
DROP TABLE IF EXISTS build_waiters;
