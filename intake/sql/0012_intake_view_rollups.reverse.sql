-- Back to the views of 0004_intake_views.sql and 0008_extraction_accuracy_evaluations.sql over the raw tables, and
-- the fold, marks and reset of 0011_conversation_daily.sql. The rollups' tables and the triggers go with the
-- migration's model operations.

CREATE OR REPLACE VIEW conversation_performance_summary AS
SELECT (c.started_at AT TIME ZONE 'UTC')::date || '/' || c.model AS id,
       (c.started_at AT TIME ZONE 'UTC')::date AS day,
       c.model,
       count(*)::integer AS conversations,
       sum(c.message_count)::bigint AS messages,
       sum(c.prompt_tokens)::bigint AS prompt_tokens,
       sum(c.completion_tokens)::bigint AS completion_tokens,
       sum(c.prompt_tokens + c.completion_tokens)::bigint AS total_tokens,
       sum(c.total_cost) AS total_cost,
       count(c.satisfaction_score)::integer AS rated_conversations,
       round(avg(c.satisfaction_score), 2) AS avg_satisfaction,
       count(s.conversation_id)::integer AS submitted_conversations,
       round(count(s.conversation_id)::numeric / count(*), 4) AS submitted_share
FROM conversations c
LEFT JOIN (SELECT DISTINCT m.conversation_id FROM build_manifests m WHERE m.status = 'submitted') s
       ON s.conversation_id = c.id
WHERE c.deleted_at IS NULL
GROUP BY 2, 3;

-- Per day and intent: how many were detected, in how many conversations, and their average confidence.
CREATE OR REPLACE VIEW intent_analytics AS
SELECT (i.created_at AT TIME ZONE 'UTC')::date || '/' || i.intent AS id,
       (i.created_at AT TIME ZONE 'UTC')::date AS day,
       i.intent,
       count(*)::integer AS intents,
       count(DISTINCT i.conversation_id)::integer AS conversations,
       round(avg(i.confidence), 3) AS avg_confidence
FROM conversation_intents i
JOIN conversations c ON c.id = i.conversation_id AND c.deleted_at IS NULL
GROUP BY 2, 3;

-- Per requirement type: extractions, how many a person verified and with what outcome, the verified share, and
-- precision = correct / verified (an extraction marked incorrect or corrected counts against it).

CREATE OR REPLACE VIEW extraction_accuracy AS
WITH production AS (
    SELECT e.requirement_type,
           count(*)::integer AS extractions,
           count(*) FILTER (WHERE e.verification <> 'unverified')::integer AS verified,
           count(*) FILTER (WHERE e.verification = 'correct')::integer AS correct,
           count(*) FILTER (WHERE e.verification = 'corrected')::integer AS corrected,
           count(*) FILTER (WHERE e.verification = 'incorrect')::integer AS incorrect,
           round(avg(e.confidence), 3) AS avg_confidence
    FROM requirement_extractions e
    JOIN conversations c ON c.id = e.conversation_id AND c.deleted_at IS NULL
    GROUP BY e.requirement_type
), latest_run AS (
    SELECT run_id, created_at, extractor
    FROM extraction_evaluations
    WHERE split = 'test'
    ORDER BY created_at DESC, id DESC
    LIMIT 1
), evaluation AS (
    SELECT v.requirement_type, r.created_at, r.extractor,
           round(v.true_positives::numeric / nullif(v.true_positives + v.false_positives, 0), 4) AS eval_precision,
           round(v.true_positives::numeric / nullif(v.true_positives + v.false_negatives, 0), 4) AS eval_recall,
           round(2 * v.true_positives::numeric
                 / nullif(2 * v.true_positives + v.false_positives + v.false_negatives, 0), 4) AS eval_f1
    FROM extraction_evaluations v
    JOIN latest_run r ON r.run_id = v.run_id
    WHERE v.split = 'test' AND v.requirement_type <> 'all'
)
SELECT coalesce(p.requirement_type, v.requirement_type)::varchar(32) AS requirement_type,
       coalesce(p.extractions, 0) AS extractions,
       coalesce(p.verified, 0) AS verified,
       coalesce(p.correct, 0) AS correct,
       coalesce(p.corrected, 0) AS corrected,
       coalesce(p.incorrect, 0) AS incorrect,
       coalesce(round(p.verified::numeric / nullif(p.extractions, 0), 4), 0) AS verified_share,
       round(p.correct::numeric / nullif(p.verified, 0), 4) AS precision,
       p.avg_confidence,
       v.created_at AS evaluated_at,
       v.extractor::varchar(200) AS evaluation_extractor,
       v.eval_precision AS evaluation_precision,
       v.eval_recall AS evaluation_recall,
       v.eval_f1 AS evaluation_f1
FROM production p
FULL JOIN evaluation v ON v.requirement_type = p.requirement_type;

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

DROP FUNCTION IF EXISTS conversation_submitted_mark();
DROP FUNCTION IF EXISTS extraction_daily_mark();
DROP FUNCTION IF EXISTS intent_daily_mark();
DROP FUNCTION IF EXISTS conversation_daily_mark_days(date[]);
DROP FUNCTION IF EXISTS extraction_daily_figures(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS intent_daily_figures(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS conversation_model_figures(timestamptz, timestamptz);
