-- The trigger goes with the migration's RemoveTrigger; then the function it called.
DROP FUNCTION IF EXISTS manifest_check_credentials(uuid, jsonb);
