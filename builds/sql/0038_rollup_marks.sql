-- builds.0038_rollup_marks: the daily rollups' mark triggers fire only for rows that can touch a folded day.
--
-- build_daily_rollup_mark and build_results_rollup_mark mark a day dirty only when it is before today (today is
-- always read live), yet their triggers fired on every claim and every completion to find that out: 2 row-trigger
-- calls and one statement trigger with a transition table per cycle, about 6 % of the cycle's server CPU
-- (bench/queue_throughput.py --only cost, the function profile). The migration puts the same test in the triggers'
-- WHEN conditions (builds.models.TODAY_STARTS), so a row of today's work fires nothing; and the insert trigger of
-- build_results becomes a row trigger with that condition, executing the function below.

CREATE OR REPLACE FUNCTION build_results_rollup_mark_row()
RETURNS trigger
LANGUAGE plpgsql
AS $function$
DECLARE
    v_day date := (NEW.created_at AT TIME ZONE 'UTC')::date;
    v_through date;
BEGIN
    IF v_day >= (clock_timestamp() AT TIME ZONE 'UTC')::date THEN
        RETURN NULL;  -- the trigger's condition says so already; kept for a caller without it
    END IF;
    SELECT s.folded_through INTO v_through FROM build_daily_rollup_state s WHERE s.id = 1 FOR SHARE;
    IF v_through IS NOT NULL AND v_day <= v_through THEN
        INSERT INTO build_daily_rollup_dirty (day) VALUES (v_day) ON CONFLICT (day) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$function$;
