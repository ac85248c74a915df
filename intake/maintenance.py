"""Intake maintenance: expire idle conversations (SQL ``expire_old_conversations``)."""

from django.db import connection, transaction

from honua.registry import maintenance_task

IDLE_HOURS = 24


@maintenance_task(
    "expire_old_conversations",
    schedule="every-6-hours",
    description=f"Active conversations idle for more than {IDLE_HOURS} hours become expired.",
)
def run(*, dry_run: bool) -> int:
    """Expire idle conversations; with ``dry_run`` the same call is rolled back, so the count is exact."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT expire_old_conversations(%s)", [IDLE_HOURS])
            (changed,) = cursor.fetchone()
        if dry_run:
            transaction.set_rollback(True)
    return changed
