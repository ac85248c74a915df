DROP VIEW IF EXISTS extraction_accuracy;
DROP VIEW IF EXISTS intent_analytics;
DROP VIEW IF EXISTS conversation_performance_summary;
DROP VIEW IF EXISTS active_conversations;
