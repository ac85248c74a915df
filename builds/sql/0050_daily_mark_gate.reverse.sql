-- builds.0050_daily_mark_gate, backwards: build_daily_rollup_mark as builds/sql/0033_dashboard_rollup.sql defined it (the
-- update trigger's WHEN clause comes back with the migration's trigger operations).

CREATE OR REPLACE FUNCTION build_daily_rollup_mark()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_days date[] := '{}';
    v_through date;
BEGIN
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
