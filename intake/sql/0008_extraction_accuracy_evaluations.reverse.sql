-- Back to the view of 0004_intake_views (CREATE OR REPLACE cannot drop columns).
DROP VIEW IF EXISTS extraction_accuracy;
-- Per requirement type: extractions, how many a person verified and with what outcome, the verified share, and
-- precision = correct / verified (an extraction marked incorrect or corrected counts against it).
CREATE OR REPLACE VIEW extraction_accuracy AS
SELECT e.requirement_type,
       count(*)::integer AS extractions,
       count(*) FILTER (WHERE e.verification <> 'unverified')::integer AS verified,
       count(*) FILTER (WHERE e.verification = 'correct')::integer AS correct,
       count(*) FILTER (WHERE e.verification = 'corrected')::integer AS corrected,
       count(*) FILTER (WHERE e.verification = 'incorrect')::integer AS incorrect,
       round((count(*) FILTER (WHERE e.verification <> 'unverified'))::numeric / count(*), 4) AS verified_share,
       round((count(*) FILTER (WHERE e.verification = 'correct'))::numeric
             / nullif(count(*) FILTER (WHERE e.verification <> 'unverified'), 0), 4) AS precision,
       round(avg(e.confidence), 3) AS avg_confidence
FROM requirement_extractions e
JOIN conversations c ON c.id = e.conversation_id AND c.deleted_at IS NULL
GROUP BY e.requirement_type;
