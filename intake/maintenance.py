"""Intake maintenance: expire idle conversations (SQL ``expire_old_conversations``) and fold the dashboard's
conversations per day and the intake views' rollups (``fold_conversation_daily``)."""

from django.db import connection, transaction

from honua.registry import maintenance_task
from intake import services

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


@maintenance_task(
    "conversation_fold_daily",
    schedule="hourly",
    description="Fold closed days of conversations, intents and extractions into conversation_daily (the "
    "dashboard's 30 days) and the intake views' rollups, and re-fold the days a late change marked.",
    transactional=False,
)
def fold_daily(*, dry_run: bool) -> int:
    if dry_run:
        return services.conversation_daily_backlog()
    return services.conversation_daily_fold()
