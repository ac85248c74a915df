-- The rollup's tables and the conversations' triggers go with the migration's model operations (the triggers before
-- this file, the tables after it).
DROP FUNCTION IF EXISTS fold_conversation_daily(integer, integer, interval);
DROP FUNCTION IF EXISTS conversation_daily_reset();
DROP FUNCTION IF EXISTS conversation_daily_mark();
DROP FUNCTION IF EXISTS conversation_daily_figures(timestamptz, timestamptz);
