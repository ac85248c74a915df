-- extraction_accuracy, now also showing the latest evaluation run of the extractor (extraction_evaluations, the
-- held-out "test" split) per requirement type. The production columns are unchanged; a type that only the
-- evaluation has appears with zero extractions. Evaluation cases never enter requirement_extractions: those hold
-- customers' conversations and people's verdicts.
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
