-- builds.0050_daily_mark_gate: the daily rollup's update trigger on build_queue decides in PL/pgSQL, not in a WHEN
-- clause, whether an update can touch a folded day.
--
-- PostgreSQL reads a row trigger's WHEN expression back from the catalog and prepares it again for every statement
-- that fires the trigger; this one (six column comparisons and four copies of the start of today, 8 KB as stored)
-- was prepared for the claim's and the completion's updates of the build, only to be false for both. A function's
-- statements are planned once per connection, so the same test as the function's first lines costs less than the
-- WHEN clause did: 1,230 against 1,305 us of server CPU per claim + complete cycle on clones of the queue
-- benchmark's database (three alternated pairs, bench/queue_throughput.py's cycle on one connection). The trigger
-- keeps firing on every update (builds.models, build_daily_rollup_mark_update); the insert and delete triggers keep
-- their WHEN clauses (not on the queue's hot path).

CREATE OR REPLACE FUNCTION build_daily_rollup_mark()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_days date[] := '{}';
    v_through date;
BEGIN
    -- An update marks only if it changes what the rollup counts and a day before today is among the row's days
    -- (its finish day, or its creation day if a cache hit), before or after: the update trigger's old WHEN clause.
    IF TG_OP = 'UPDATE' THEN
        IF (OLD.status, OLD.finished_at, OLD.started_at, OLD.created_at, OLD.cache_hit, OLD.customer_id)
               IS NOT DISTINCT FROM
           (NEW.status, NEW.finished_at, NEW.started_at, NEW.created_at, NEW.cache_hit, NEW.customer_id)
           OR NOT coalesce(least(OLD.finished_at, NEW.finished_at, CASE WHEN OLD.cache_hit THEN OLD.created_at END,
                                 CASE WHEN NEW.cache_hit THEN NEW.created_at END)
                           < v_today::timestamp AT TIME ZONE 'UTC', false) THEN
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF OLD.finished_at IS NOT NULL THEN
            v_days := v_days || (OLD.finished_at AT TIME ZONE 'UTC')::date;
        END IF;
        IF OLD.cache_hit THEN
            v_days := v_days || (OLD.created_at AT TIME ZONE 'UTC')::date;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        IF NEW.finished_at IS NOT NULL THEN
            v_days := v_days || (NEW.finished_at AT TIME ZONE 'UTC')::date;
        END IF;
        IF NEW.cache_hit THEN
            v_days := v_days || (NEW.created_at AT TIME ZONE 'UTC')::date;
        END IF;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM unnest(v_days) d WHERE d < v_today) THEN
        RETURN NULL;
    END IF;
    SELECT s.folded_through INTO v_through FROM build_daily_rollup_state s WHERE s.id = 1 FOR SHARE;
    IF v_through IS NOT NULL THEN
        INSERT INTO build_daily_rollup_dirty (day)
        SELECT DISTINCT d FROM unnest(v_days) d WHERE d <= v_through
        ON CONFLICT (day) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$function$;
