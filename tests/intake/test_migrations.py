"""The intake's migrations reverse cleanly and apply again."""

import pytest
from django.core.management import call_command
from django.db import connection


def _exists(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_intake_migrations_reverse_and_reapply():
    """Back to 0001 removes the trigger function, the SQL function and the views; forward restores them."""
    function = "SELECT to_regprocedure('expire_old_conversations(integer)') IS NOT NULL"
    view = "SELECT to_regclass(%s) IS NOT NULL"
    call_command("migrate", "intake", "0001", verbosity=0)
    try:
        assert not _exists(function, [])
        assert not _exists(view, ["extraction_accuracy"])
    finally:
        call_command("migrate", verbosity=0)  # every app: operations 0006 depends on intake's last
    assert _exists(function, [])
    assert all(_exists(view, [name]) for name in ("active_conversations", "intent_analytics", "extraction_accuracy"))
