-- The triggers that executed these are gone by now (the migration's RemoveTrigger/AddTrigger run backwards first).
DROP FUNCTION IF EXISTS build_queue_account_row();
DROP FUNCTION IF EXISTS build_queue_set_updated_at();
