"""Daily licensing maintenance: expire licenses and retire expired registry credentials (SQL functions)."""

import datetime as dt

import pghistory
from django.db import connection, transaction
from django.db.models import Q

from honua.registry import maintenance_task
from licensing.models import License, RegistryCredential
from licensing.services import credentials_revoke_expired, licenses_expire

CREDENTIAL_GRACE_DAYS = 7


@maintenance_task("expire_licenses", schedule="daily", description="Active licenses past expires_at become expired.")
def expire_licenses(*, dry_run: bool) -> int:
    if dry_run:
        return License.objects.filter(status=License.Status.ACTIVE, deleted_at=None, expires_at__lte=_db_now()).count()
    with transaction.atomic(), pghistory.context(command="maintenance:expire_licenses"):
        return licenses_expire()


@maintenance_task(
    "revoke_expired_credentials",
    schedule="daily",
    description=f"Credentials past expiry become expired, and revoked after {CREDENTIAL_GRACE_DAYS} days.",
)
def revoke_expired_credentials(*, dry_run: bool) -> int:
    if dry_run:
        now = _db_now()
        cutoff = now - dt.timedelta(days=CREDENTIAL_GRACE_DAYS)
        return (
            RegistryCredential.objects.filter(expires_at__lte=now)
            .filter(Q(status=RegistryCredential.Status.ACTIVE) | Q(status="expired", expires_at__lt=cutoff))
            .count()
        )
    with transaction.atomic(), pghistory.context(command="maintenance:revoke_expired_credentials"):
        return credentials_revoke_expired(grace_days=CREDENTIAL_GRACE_DAYS)


def _db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]
