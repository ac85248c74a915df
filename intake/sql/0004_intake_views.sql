-- The intake's operator views (seed names). Soft-deleted conversations are left out of all four.
-- Days are calendar days in UTC.

-- Active conversations with their customer, how long they have been idle, totals, and the open manifest.
CREATE OR REPLACE VIEW active_conversations AS
SELECT c.id,
       c.customer_id,
       cu.name AS customer_name,
       c.channel,
       c.model,
       c.title,
       c.started_at,
       c.last_message_at,
       now() - coalesce(c.last_message_at, c.started_at) AS idle_for,
       c.message_count,
       c.prompt_tokens,
       c.completion_tokens,
       c.total_cost,
       m.id AS open_manifest_id,
       m.version AS open_manifest_version,
       m.status AS open_manifest_status
FROM conversations c
JOIN customers cu ON cu.id = c.customer_id
LEFT JOIN build_manifests m ON m.conversation_id = c.id AND m.status IN ('draft', 'approved')
WHERE c.status = 'active' AND c.deleted_at IS NULL;

-- Per day started and assistant model: conversations, messages, tokens, cost, average satisfaction (of the rated
-- ones), and the share of conversations that reached a submitted manifest.
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
