-- The intake views from per-day rollups of the closed days plus the live rows of the days not folded (issue 15), so
-- their cost follows the number of days, not the history's conversations, intents and extractions:
-- conversation_performance_summary reads conversation_model_daily, intent_analytics intent_daily, and
-- extraction_accuracy sums extraction_daily. They are folded with conversation_daily (0011_conversation_daily.sql)
-- by fold_conversation_daily, under its state and dirty days: a day is folded for all four at once, and a day
-- marked dirty is read live by all four until it is folded again. Same columns, types and figures as
-- 0004_intake_views.sql and 0008_extraction_accuracy_evaluations.sql: a conversation belongs to the UTC day of its
-- started_at, an intent or extraction to the UTC day of its created_at, and each counts while its conversation is
-- not deleted. Marks: the conversations' triggers (now also on message_count and model, and a delete or restore
-- marks the days of the conversation's intents and extractions), the intents' and extractions' triggers, and the
-- manifests' (a conversation's submission counts on its start day).

-- conversation_model_figures: conversation_performance_summary's rows (without id) for the conversations started in
-- [p_from, p_to). A submitted conversation is one with a submitted manifest, looked up per conversation (the view's
-- DISTINCT list of every submitted manifest, read per range, grew with the history). JIT off and not inlined, as
-- builds/sql/0035_dashboard_rollups.sql explains for its figures functions.
CREATE OR REPLACE FUNCTION conversation_model_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (day date, model varchar(100), conversations integer, messages bigint, prompt_tokens bigint,
               completion_tokens bigint, total_tokens bigint, total_cost numeric, rated_conversations integer,
               avg_satisfaction numeric, submitted_conversations integer, submitted_share numeric)
LANGUAGE plpgsql STABLE ROWS 10 SET jit = off AS $$
BEGIN
    RETURN QUERY EXECUTE $q$
    SELECT (c.started_at AT TIME ZONE 'UTC')::date,
           c.model,
           count(*)::integer,
           sum(c.message_count),
           sum(c.prompt_tokens)::bigint,
           sum(c.completion_tokens)::bigint,
           sum(c.prompt_tokens + c.completion_tokens)::bigint,
           sum(c.total_cost),
           count(c.satisfaction_score)::integer,
           round(avg(c.satisfaction_score), 2),
           count(s.submitted)::integer,
           round(count(s.submitted)::numeric / count(*)::numeric, 4)
      FROM conversations c
      LEFT JOIN LATERAL (
           SELECT 1 AS submitted FROM build_manifests m
            WHERE m.conversation_id = c.id AND m.status = 'submitted' LIMIT 1
      ) s ON true
     WHERE c.started_at >= $1 AND c.started_at < $2 AND c.deleted_at IS NULL
     GROUP BY 1, 2
    $q$ USING p_from, p_to;
END;
$$;

-- intent_daily_figures: intent_analytics's rows (without id) for the intents created in [p_from, p_to). An intent
-- counts while its conversation is not deleted: as the intent's conversation always exists (foreign key), that is
-- "no deleted conversation of that id", answered by the small index of the deleted ones
-- (conversations_deleted_idx); a join to every conversation read the whole history for one day's intents.
CREATE OR REPLACE FUNCTION intent_daily_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (day date, intent varchar(32), intents integer, conversations integer, avg_confidence numeric)
LANGUAGE plpgsql STABLE ROWS 10 SET jit = off AS $$
BEGIN
    RETURN QUERY EXECUTE $q$
    SELECT (i.created_at AT TIME ZONE 'UTC')::date,
           i.intent,
           count(*)::integer,
           count(DISTINCT i.conversation_id)::integer,
           round(avg(i.confidence), 3)
      FROM conversation_intents i
     WHERE i.created_at >= $1 AND i.created_at < $2
       AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = i.conversation_id AND c.deleted_at IS NOT NULL)
     GROUP BY 1, 2
    $q$ USING p_from, p_to;
END;
$$;

-- extraction_daily_figures: per UTC day and requirement type, the extractions created in [p_from, p_to): counts
-- per verification and the confidence sum (avg(confidence) is that sum over the count, exactly: numeric avg is
-- sum / count). Deleted conversations left out as for the intents.
CREATE OR REPLACE FUNCTION extraction_daily_figures(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (day date, requirement_type varchar(32), extractions bigint, verified bigint, correct bigint,
               corrected bigint, incorrect bigint, confidence_sum numeric)
LANGUAGE plpgsql STABLE ROWS 10 SET jit = off AS $$
BEGIN
    RETURN QUERY EXECUTE $q$
    SELECT (e.created_at AT TIME ZONE 'UTC')::date,
           e.requirement_type,
           count(*),
           count(*) FILTER (WHERE e.verification <> 'unverified'),
           count(*) FILTER (WHERE e.verification = 'correct'),
           count(*) FILTER (WHERE e.verification = 'corrected'),
           count(*) FILTER (WHERE e.verification = 'incorrect'),
           sum(e.confidence)
      FROM requirement_extractions e
     WHERE e.created_at >= $1 AND e.created_at < $2
       AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = e.conversation_id AND c.deleted_at IS NOT NULL)
     GROUP BY 1, 2
    $q$ USING p_from, p_to;
END;
$$;

-- conversation_daily_mark_days: mark the days among p_days that are closed and already folded, so the views read
-- them live and the next fold re-folds them. The share lock on the state row orders the mark with a concurrent
-- fold: the fold waits for this transaction, or this waits for the fold and then sees its new folded_through.
CREATE OR REPLACE FUNCTION conversation_daily_mark_days(p_days date[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_today date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_through date;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM unnest(p_days) d WHERE d < v_today) THEN
        RETURN;
    END IF;
    SELECT s.folded_through INTO v_through FROM conversation_daily_state s WHERE s.id = 1 FOR SHARE;
    IF v_through IS NOT NULL THEN
        INSERT INTO conversation_daily_dirty (day)
        SELECT DISTINCT d FROM unnest(p_days) d WHERE d <= v_through AND d < v_today
        ON CONFLICT (day) DO NOTHING;
    END IF;
END;
$$;

-- conversation_daily_mark (trigger on conversations): the conversation's start days, old and new; a delete or a
-- restore (deleted_at changed) also changes what its intents and extractions count, on their own days.
CREATE OR REPLACE FUNCTION conversation_daily_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_days date[] := '{}';
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_days := v_days || (OLD.started_at AT TIME ZONE 'UTC')::date;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        v_days := v_days || (NEW.started_at AT TIME ZONE 'UTC')::date;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS DISTINCT FROM NEW.deleted_at THEN
        v_days := v_days
            || ARRAY(SELECT DISTINCT (i.created_at AT TIME ZONE 'UTC')::date
                       FROM conversation_intents i WHERE i.conversation_id = NEW.id)
            || ARRAY(SELECT DISTINCT (e.created_at AT TIME ZONE 'UTC')::date
                       FROM requirement_extractions e WHERE e.conversation_id = NEW.id);
    END IF;
    PERFORM conversation_daily_mark_days(v_days);
    RETURN NULL;
END;
$$;

-- intent_daily_mark, extraction_daily_mark (triggers on conversation_intents, requirement_extractions): the row's
-- creation days, old and new.
CREATE OR REPLACE FUNCTION intent_daily_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_days date[] := '{}';
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_days := v_days || (OLD.created_at AT TIME ZONE 'UTC')::date;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        v_days := v_days || (NEW.created_at AT TIME ZONE 'UTC')::date;
    END IF;
    PERFORM conversation_daily_mark_days(v_days);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION extraction_daily_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_days date[] := '{}';
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_days := v_days || (OLD.created_at AT TIME ZONE 'UTC')::date;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        v_days := v_days || (NEW.created_at AT TIME ZONE 'UTC')::date;
    END IF;
    PERFORM conversation_daily_mark_days(v_days);
    RETURN NULL;
END;
$$;

-- conversation_submitted_mark (trigger on build_manifests, for a manifest that is or was submitted): the start day
-- of its conversation, old and new.
CREATE OR REPLACE FUNCTION conversation_submitted_mark()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids uuid[] := '{}';
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_ids := v_ids || OLD.conversation_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        v_ids := v_ids || NEW.conversation_id;
    END IF;
    PERFORM conversation_daily_mark_days(ARRAY(
        SELECT (c.started_at AT TIME ZONE 'UTC')::date FROM conversations c WHERE c.id = ANY (v_ids)));
    RETURN NULL;
END;
$$;

-- conversation_daily_reset (TRUNCATE of conversations, intents, extractions or manifests): nothing is folded any more.
CREATE OR REPLACE FUNCTION conversation_daily_reset()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM conversation_daily;
    DELETE FROM conversation_model_daily;
    DELETE FROM intent_daily;
    DELETE FROM extraction_daily;
    DELETE FROM conversation_daily_dirty;
    UPDATE conversation_daily_state SET folded_through = NULL;
    RETURN NULL;
END;
$$;

-- fold_conversation_daily: as in 0011_conversation_daily.sql, for the four rollups: fold up to p_max_days closed
-- days after folded_through (oldest first), the days marked dirty (at most p_max_days), and re-fold the last
-- p_refold_days folded days. The hourly task passes no re-fold days (intake.services.conversation_daily_fold): the
-- triggers mark every late change, so an hour with nothing new folds and writes nothing. The first day is the earliest of the
-- conversations', intents' and extractions'. Each day is replaced whole, so folding a day again gives the same rows.
-- Returns the days folded.
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
        SELECT least((SELECT min(c.started_at) FROM conversations c),
                     (SELECT min(i.created_at) FROM conversation_intents i),
                     (SELECT min(e.created_at) FROM requirement_extractions e))
          INTO v_first;
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
        DELETE FROM conversation_model_daily r WHERE r.day = ANY (v_days);
        INSERT INTO conversation_model_daily (day, model, conversations, messages, prompt_tokens, completion_tokens,
                                              total_tokens, total_cost, rated_conversations, avg_satisfaction,
                                              submitted_conversations, submitted_share)
        SELECT f.*
          FROM unnest(v_days) d(day)
         CROSS JOIN LATERAL conversation_model_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                       ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f;
        DELETE FROM intent_daily r WHERE r.day = ANY (v_days);
        INSERT INTO intent_daily (day, intent, intents, conversations, avg_confidence)
        SELECT f.*
          FROM unnest(v_days) d(day)
         CROSS JOIN LATERAL intent_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                 ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f;
        DELETE FROM extraction_daily r WHERE r.day = ANY (v_days);
        INSERT INTO extraction_daily (day, requirement_type, extractions, verified, correct, corrected, incorrect,
                                      confidence_sum)
        SELECT f.*
          FROM unnest(v_days) d(day)
         CROSS JOIN LATERAL extraction_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                     ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f;
    END IF;
    -- Nothing new: no new row version either (an hourly run that finds nothing writes nothing).
    UPDATE conversation_daily_state SET folded_through = v_new_through
     WHERE id = 1 AND folded_through IS DISTINCT FROM v_new_through;
    RETURN coalesce(cardinality(v_days), 0);
END;
$$;

-- The views: the folded days that are not dirty from the rollups, the days after folded_through and the dirty days
-- live. Without a state row (a flushed test database) everything is read live.
CREATE OR REPLACE VIEW conversation_performance_summary AS
SELECT k.id,
       g.day,
       g.model::varchar(100) AS model,
       g.conversations,
       g.messages,
       g.prompt_tokens,
       g.completion_tokens,
       g.total_tokens,
       g.total_cost,
       g.rated_conversations,
       g.avg_satisfaction,
       g.submitted_conversations,
       g.submitted_share
  FROM (
        SELECT r.day, r.model, r.conversations, r.messages, r.prompt_tokens, r.completion_tokens, r.total_tokens,
               r.total_cost::numeric AS total_cost, r.rated_conversations,
               r.avg_satisfaction::numeric AS avg_satisfaction, r.submitted_conversations,
               r.submitted_share::numeric AS submitted_share
          FROM conversation_model_daily r
          JOIN conversation_daily_state s ON s.id = 1 AND r.day <= s.folded_through
         WHERE NOT EXISTS (SELECT 1 FROM conversation_daily_dirty d WHERE d.day = r.day)
        UNION ALL
        SELECT f.*
          FROM (SELECT max(s.folded_through) AS through FROM conversation_daily_state s) s
         CROSS JOIN LATERAL conversation_model_figures(
               coalesce((s.through + 1)::timestamp AT TIME ZONE 'UTC', '-infinity'), 'infinity') f
        UNION ALL
        SELECT f.*
          FROM conversation_daily_dirty d
          JOIN conversation_daily_state s ON s.id = 1 AND d.day <= s.folded_through
         CROSS JOIN LATERAL conversation_model_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                       ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f
       ) g
 -- The id in a lateral of its own: with two relations at the top, PostgreSQL 15 and 18 print the view alike
 -- (18 leaves out the qualifiers of a lone relation's columns), so the schema tree holds one text for both.
 CROSS JOIN LATERAL (SELECT (g.day || '/') || g.model AS id) k;

CREATE OR REPLACE VIEW intent_analytics AS
SELECT k.id,
       g.day,
       g.intent::varchar(32) AS intent,
       g.intents,
       g.conversations,
       g.avg_confidence
  FROM (
        SELECT r.day, r.intent, r.intents, r.conversations, r.avg_confidence::numeric AS avg_confidence
          FROM intent_daily r
          JOIN conversation_daily_state s ON s.id = 1 AND r.day <= s.folded_through
         WHERE NOT EXISTS (SELECT 1 FROM conversation_daily_dirty d WHERE d.day = r.day)
        UNION ALL
        SELECT f.*
          FROM (SELECT max(s.folded_through) AS through FROM conversation_daily_state s) s
         CROSS JOIN LATERAL intent_daily_figures(
               coalesce((s.through + 1)::timestamp AT TIME ZONE 'UTC', '-infinity'), 'infinity') f
        UNION ALL
        SELECT f.*
          FROM conversation_daily_dirty d
          JOIN conversation_daily_state s ON s.id = 1 AND d.day <= s.folded_through
         CROSS JOIN LATERAL intent_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                 ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f
       ) g
 CROSS JOIN LATERAL (SELECT (g.day || '/') || g.intent AS id) k;  -- as above: one text on PostgreSQL 15 and 18

CREATE OR REPLACE VIEW extraction_accuracy AS
WITH production AS (
    SELECT g.requirement_type,
           sum(g.extractions)::integer AS extractions,
           sum(g.verified)::integer AS verified,
           sum(g.correct)::integer AS correct,
           sum(g.corrected)::integer AS corrected,
           sum(g.incorrect)::integer AS incorrect,
           round(sum(g.confidence_sum) / sum(g.extractions), 3) AS avg_confidence
      FROM (
            SELECT r.requirement_type, r.extractions, r.verified, r.correct, r.corrected, r.incorrect,
                   r.confidence_sum::numeric AS confidence_sum
              FROM extraction_daily r
              JOIN conversation_daily_state s ON s.id = 1 AND r.day <= s.folded_through
             WHERE NOT EXISTS (SELECT 1 FROM conversation_daily_dirty d WHERE d.day = r.day)
            UNION ALL
            SELECT f.requirement_type, f.extractions, f.verified, f.correct, f.corrected, f.incorrect,
                   f.confidence_sum
              FROM (SELECT max(s.folded_through) AS through FROM conversation_daily_state s) s
             CROSS JOIN LATERAL extraction_daily_figures(
                   coalesce((s.through + 1)::timestamp AT TIME ZONE 'UTC', '-infinity'), 'infinity') f
            UNION ALL
            SELECT f.requirement_type, f.extractions, f.verified, f.correct, f.corrected, f.incorrect,
                   f.confidence_sum
              FROM conversation_daily_dirty d
              JOIN conversation_daily_state s ON s.id = 1 AND d.day <= s.folded_through
             CROSS JOIN LATERAL extraction_daily_figures((d.day::timestamp AT TIME ZONE 'UTC'),
                                                         ((d.day + 1)::timestamp AT TIME ZONE 'UTC')) f
           ) g
     GROUP BY g.requirement_type
), latest_run AS (
    SELECT extraction_evaluations.run_id, extraction_evaluations.created_at, extraction_evaluations.extractor
      FROM extraction_evaluations
     WHERE extraction_evaluations.split = 'test'
     ORDER BY extraction_evaluations.created_at DESC, extraction_evaluations.id DESC
     LIMIT 1
), evaluation AS (
    SELECT v_1.requirement_type,
           r.created_at,
           r.extractor,
           round(v_1.true_positives::numeric / NULLIF(v_1.true_positives + v_1.false_positives, 0)::numeric, 4)
               AS eval_precision,
           round(v_1.true_positives::numeric / NULLIF(v_1.true_positives + v_1.false_negatives, 0)::numeric, 4)
               AS eval_recall,
           round(2::numeric * v_1.true_positives::numeric
                 / NULLIF(2 * v_1.true_positives + v_1.false_positives + v_1.false_negatives, 0)::numeric, 4)
               AS eval_f1
      FROM extraction_evaluations v_1
      JOIN latest_run r ON r.run_id = v_1.run_id
     WHERE v_1.split = 'test' AND v_1.requirement_type <> 'all'
)
SELECT COALESCE(p.requirement_type, v.requirement_type)::varchar(32) AS requirement_type,
       COALESCE(p.extractions, 0) AS extractions,
       COALESCE(p.verified, 0) AS verified,
       COALESCE(p.correct, 0) AS correct,
       COALESCE(p.corrected, 0) AS corrected,
       COALESCE(p.incorrect, 0) AS incorrect,
       COALESCE(round(p.verified::numeric / NULLIF(p.extractions, 0)::numeric, 4), 0::numeric) AS verified_share,
       round(p.correct::numeric / NULLIF(p.verified, 0)::numeric, 4) AS "precision",
       p.avg_confidence,
       v.created_at AS evaluated_at,
       v.extractor::varchar(200) AS evaluation_extractor,
       v.eval_precision AS evaluation_precision,
       v.eval_recall AS evaluation_recall,
       v.eval_f1 AS evaluation_f1
  FROM production p
  FULL JOIN evaluation v ON v.requirement_type = p.requirement_type;

-- Backfill: the folded days of the new rollups (the dirty ones too: they are read live until re-folded), in one
-- pass each. Not folded yet (folded_through NULL): the views read everything live until the first fold.
INSERT INTO conversation_model_daily (day, model, conversations, messages, prompt_tokens, completion_tokens,
                                      total_tokens, total_cost, rated_conversations, avg_satisfaction,
                                      submitted_conversations, submitted_share)
SELECT f.*
  FROM conversation_daily_state s
 CROSS JOIN LATERAL conversation_model_figures('-infinity', (s.folded_through + 1)::timestamp AT TIME ZONE 'UTC') f
 WHERE s.id = 1 AND s.folded_through IS NOT NULL;
INSERT INTO intent_daily (day, intent, intents, conversations, avg_confidence)
SELECT f.*
  FROM conversation_daily_state s
 CROSS JOIN LATERAL intent_daily_figures('-infinity', (s.folded_through + 1)::timestamp AT TIME ZONE 'UTC') f
 WHERE s.id = 1 AND s.folded_through IS NOT NULL;
INSERT INTO extraction_daily (day, requirement_type, extractions, verified, correct, corrected, incorrect,
                              confidence_sum)
SELECT f.*
  FROM conversation_daily_state s
 CROSS JOIN LATERAL extraction_daily_figures('-infinity', (s.folded_through + 1)::timestamp AT TIME ZONE 'UTC') f
 WHERE s.id = 1 AND s.folded_through IS NOT NULL;
