DROP FUNCTION IF EXISTS expire_old_conversations(integer);
