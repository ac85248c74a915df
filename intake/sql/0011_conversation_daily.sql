-- The dashboard's 30-day conversation figures from a per-day rollup of the closed days plus today's live rows
-- (issue 15): conversation_daily, its state and dirty days, the conversations' triggers marking late changes (a
-- conversation of a folded day that gets messages, a score, or is deleted), fold_conversation_daily, and the
-- backfill. The figures are console.selectors.conversation_activity's: a conversation belongs to the UTC day of
-- its started_at, and counts while it is not deleted.

INSERT INTO conversation_daily_state (id, folded_through) VALUES (1, NULL) ON CONFLICT (id) DO NOTHING;

-- conversation_daily_figures: per UTC day, the conversations started in [p_from, p_to) and not deleted: how many,
-- their tokens and cost, and the scored ones' satisfaction sum and count. JIT off and not inlined, as
-- builds/sql/0035_dashboard_rollups.sql explains for its figures functions.
CREATE OR REPLACE FUNCTION conversation_daily_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (day date, conversations bigint, tokens bigint, cost numeric, satisfaction_sum bigint,
               satisfaction_count bigint)
LANGUAGE plpgsql STABLE ROWS 2 SET jit = off AS $$
BEGIN
    RETURN QUERY EXECUTE $q$
    SELECT (c.started_at AT TIME ZONE 'UTC')::date, count(*), coalesce(sum(c.prompt_tokens + c.completion_tokens), 0)::bigint,
           coalesce(sum(c.total_cost), 0), coalesce(sum(c.satisfaction_score), 0)::bigint, count(c.satisfaction_score)
      FROM conversations c
     WHERE c.started_at >= $1 AND c.started_at < $2 AND c.deleted_at IS NULL
     GROUP BY 1
    $q$ USING p_from, p_to;
END;
$$;

-- conversation_daily_mark (trigger, AFTER INSERT/UPDATE/DELETE of a conversation, each with a WHEN): a change to a
-- conversation of a closed day that is already folded marks the day, so the dashboard reads it live and the next
-- fold re-folds it. The share lock on the state row orders the mark with a concurrent fold.
CREATE OR REPLACE FUNCTION conversation_daily_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_days date[] := '{}';
    v_through date;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_days := v_days || (OLD.started_at AT TIME ZONE 'UTC')::date;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        v_days := v_days || (NEW.started_at AT TIME ZONE 'UTC')::date;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM unnest(v_days) d WHERE d < v_today) THEN
        RETURN NULL;
    END IF;
    SELECT s.folded_through INTO v_through FROM conversation_daily_state s WHERE s.id = 1 FOR SHARE;
    IF v_through IS NOT NULL THEN
        INSERT INTO conversation_daily_dirty (day)
        SELECT DISTINCT d FROM unnest(v_days) d WHERE d <= v_through
        ON CONFLICT (day) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

-- conversation_daily_reset (TRUNCATE conversations): nothing is folded any more.
CREATE OR REPLACE FUNCTION conversation_daily_reset()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM conversation_daily;
    DELETE FROM conversation_daily_dirty;
    UPDATE conversation_daily_state SET folded_through = NULL;
    RETURN NULL;
END;
$$;

-- fold_conversation_daily: fold up to p_max_days closed days after folded_through (oldest first), the days marked
-- dirty (at most p_max_days), and re-fold the last p_refold_days folded days (a change that slipped past the mark:
-- a transaction that began before midnight and committed after the fold). A day is closed when it ended at least
-- p_grace ago. Each day is replaced whole, so folding a day again gives the same row. Returns the days folded.
CREATE OR REPLACE FUNCTION fold_conversation_daily(
    p_max_days integer DEFAULT 31,
    p_refold_days integer DEFAULT 2,
    p_grace interval DEFAULT interval '15 minutes'
)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_through date;
    v_closed date := ((now() - p_grace) AT TIME ZONE 'UTC')::date - 1;
    v_first timestamptz;
    v_new_through date;
    v_days date[];
BEGIN
    IF p_max_days IS NULL OR p_max_days < 1 OR p_refold_days IS NULL OR p_refold_days < 0
       OR p_grace IS NULL OR p_grace < interval '0' THEN
        RAISE EXCEPTION 'fold_conversation_daily needs max_days >= 1, refold_days >= 0 and a grace >= 0, got %, %, %',
            coalesce(p_max_days::text, 'NULL'), coalesce(p_refold_days::text, 'NULL'), coalesce(p_grace::text, 'NULL')
            USING ERRCODE = 'P0001';
    END IF;
    INSERT INTO conversation_daily_state (id, folded_through) VALUES (1, NULL) ON CONFLICT (id) DO NOTHING;
    SELECT s.folded_through INTO v_through FROM conversation_daily_state s WHERE s.id = 1 FOR UPDATE;
    IF v_through IS NULL THEN
        SELECT min(c.started_at) INTO v_first FROM conversations c;
        v_through := coalesce((v_first AT TIME ZONE 'UTC')::date - 1, v_closed);
    END IF;
    v_new_through := greatest(v_through, least(v_closed, v_through + p_max_days));

    -- Dirty marks are taken first: a mark committed after this statement stays for the next fold.
    WITH taken AS (
        DELETE FROM conversation_daily_dirty d
         WHERE d.day IN (SELECT x.day FROM conversation_daily_dirty x ORDER BY x.day LIMIT p_max_days)
        RETURNING d.day
    )
    SELECT array_agg(DISTINCT day ORDER BY day) INTO v_days FROM (
        SELECT t.day FROM taken t
        UNION
        SELECT generate_series(v_through + 1, v_new_through, interval '1 day')::date
        UNION
        SELECT generate_series(v_through - p_refold_days + 1, v_through, interval '1 day')::date
    ) u(day);

    IF v_days IS NOT NULL THEN
        DELETE FROM conversation_daily c WHERE c.day = ANY (v_days);
        INSERT INTO conversation_daily (day, conversations, tokens, cost, satisfaction_sum, satisfaction_count)
        SELECT f.*
          FROM unnest(v_days) d(day)
         CROSS JOIN LATERAL conversation_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                       ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f;
    END IF;
    UPDATE conversation_daily_state SET folded_through = v_new_through WHERE id = 1;
    RETURN coalesce(cardinality(v_days), 0);
END;
$$;

-- Backfill: fold the whole history now, 31 days a statement (the hourly fold keeps it current from here). Without
-- conversations nothing is folded (folded_through stays NULL): a load that follows with the triggers off (the
-- seed) is then read live until the first fold, instead of standing behind days folded empty.
DO $$
DECLARE
    v_closed date := ((now() - interval '15 minutes') AT TIME ZONE 'UTC')::date - 1;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conversations) THEN
        RETURN;
    END IF;
    LOOP
        PERFORM fold_conversation_daily(31, 0);
        EXIT WHEN (SELECT s.folded_through FROM conversation_daily_state s WHERE s.id = 1) >= v_closed;
    END LOOP;
END;
$$;
