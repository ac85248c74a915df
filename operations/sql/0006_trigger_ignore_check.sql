-- operations.0006_trigger_ignore_check: django-pgtrigger's ignore check without a subtransaction when nothing is
-- ignored.
--
-- Every trigger django-pgtrigger generates starts by asking _pgtrigger_should_ignore(TG_NAME) whether
-- `pgtrigger.ignore` names it. The library's version reads the setting inside an EXCEPTION block, and in a session
-- that never set it (every agent's, every worker's, psql's) reading it raises "unrecognized configuration
-- parameter": so each call opened a subtransaction, raised an error, caught it and rolled the subtransaction back.
-- The rollback of a subtransaction scans the transaction's pending deferred trigger events (Django declares its
-- foreign keys DEFERRABLE INITIALLY DEFERRED, so every insert adds some until commit), so the check cost more with
-- every row the transaction had written: 14 us a call at the start of a 2,000-row enqueue statement, 84 us on
-- average over a 10,000-row one, 9 % of its CPU (`perf`: AfterTriggerEndSubXact).
--
-- This version reads the setting with missing_ok, so the common cases (never set: NULL; reset by
-- pgtrigger.ignore on its way out: '') return false at once. Only a set value is parsed, inside the same kind of
-- EXCEPTION block as before, so a value that is not a text[] literal still ignores nothing instead of failing the
-- write. Same answers as the library's in every case: `pgtrigger.ignore` works as before.
--
-- django-pgtrigger writes its own version again each time a migration installs a trigger of its own (the function
-- is part of every trigger's installation SQL). tests/operations/test_trigger_ignore_check.py fails when the
-- migrated database holds any other version: a later migration that installs a django-pgtrigger trigger must be
-- followed by one that runs this file's statement again.

CREATE OR REPLACE FUNCTION public._pgtrigger_should_ignore(trigger_name name)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    _setting text := current_setting('pgtrigger.ignore', true);
    _pgtrigger_ignore text[];
BEGIN
    IF _setting IS NULL OR _setting = '' THEN
        RETURN false;
    END IF;
    BEGIN
        _pgtrigger_ignore := _setting::text[];
    EXCEPTION WHEN OTHERS THEN
        RETURN false;
    END;
    RETURN trigger_name = ANY (_pgtrigger_ignore);
END;
$$;
