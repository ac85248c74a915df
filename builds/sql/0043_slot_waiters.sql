-- builds.0043_slot_waiters: the `slot` wake-up is sent only while some worker waits for one.
--
-- A completion that frees a capped license's slot sent `NOTIFY build_queue` every time. PostgreSQL serialises
-- the commits of notifying transactions (one lock on the notification queue, held through each commit's WAL
-- flush), so with every slot of a fleet busy, each completion waited for the flush of every other's, to wake
-- nobody: a worker with no idle slot ignores notifications. Sampled during the reference worker's drain, that lock
-- was the most common wait of its connections; with the wake-up disabled the drain was half as fast again.
--
-- Now an agent with an idle slot says so, `build_wait(waiter)` (and `build_wait_end(waiter)` once busy again), and
-- the wake-up is sent only while a registration younger than a minute exists (`build_slot_awaited()`). An agent
-- that waits re-registers at least every minute; rows left by an agent that died are ignored after a minute and
-- deleted after an hour. Register before the last claim that finds nothing, then wait: a slot freed after the
-- registration is announced, one freed before it is found by that claim. Notifications stay a latency
-- optimisation (docs/sql-api.md): an agent that never registers still finds freed slots by polling.

CREATE TABLE IF NOT EXISTS build_waiters (
    waiter text PRIMARY KEY CONSTRAINT build_waiters_waiter_valid CHECK (btrim(waiter) <> '' AND length(waiter) <= 200),
    since timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE build_waiters IS
    'Agents with an idle slot, waiting for wake-ups (build_wait / build_wait_end); the slot wake-up is sent only while one is registered.';

CREATE OR REPLACE FUNCTION build_wait(p_waiter text)
RETURNS void
LANGUAGE plpgsql
AS $function$
BEGIN
    IF p_waiter IS NULL OR btrim(p_waiter) = '' OR length(p_waiter) > 200 THEN
        RAISE EXCEPTION 'waiter id must be 1 to 200 characters, got %', coalesce(quote_literal(left(p_waiter, 40)), 'NULL')
            USING ERRCODE = 'HN001';
    END IF;
    DELETE FROM build_waiters w WHERE w.since < now() - interval '1 hour';  -- left by agents that died
    INSERT INTO build_waiters AS w (waiter, since) VALUES (p_waiter, now())
    ON CONFLICT (waiter) DO UPDATE SET since = now();
END;
$function$;
COMMENT ON FUNCTION build_wait(text) IS
    'An agent has an idle slot: send slot wake-ups (LISTEN build_queue) until build_wait_end; renew within a minute.';

CREATE OR REPLACE FUNCTION build_wait_end(p_waiter text)
RETURNS void
LANGUAGE sql
AS $function$
    DELETE FROM build_waiters w WHERE w.waiter = p_waiter
$function$;
COMMENT ON FUNCTION build_wait_end(text) IS 'The agent''s slots are busy again: no slot wake-ups on its account.';

CREATE OR REPLACE FUNCTION build_slot_awaited()
RETURNS boolean
LANGUAGE sql
STABLE
AS $function$
    SELECT EXISTS (SELECT 1 FROM build_waiters w WHERE w.since > now() - interval '1 minute')
$function$;

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
                IF v_queued > 0 AND v_running + 1 >= v_max AND build_slot_awaited() THEN
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
    IF p_running < 0 AND v_queued > 0 AND v_running - p_running >= v_max AND build_slot_awaited() THEN
        PERFORM build_notify('slot', NULL, p_license_id, NULL);
    END IF;
END;
$function$;
