-- Number the ledger rows already recorded in the order they were applied (ties: the order they were recorded).
-- On a fresh database the ledger is still empty here: `migrate` records its rows once every migration has run.
UPDATE schema_migrations AS ledger
SET version = numbered.version
FROM (SELECT id, row_number() OVER (ORDER BY applied_at, id) AS version FROM schema_migrations) AS numbered
WHERE numbered.id = ledger.id;
