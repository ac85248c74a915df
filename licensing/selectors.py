"""Reads for customers, licenses and registry credentials (the web layer, the admin, other apps)."""

import dataclasses
import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from licensing.keys import decrypt_license_key, decrypt_secret, license_key_index
from licensing.models import Customer, License, RegistryCredential
from licensing.tiers import FEATURES

UNKNOWN_FEATURE = "Unknown feature {feature!r}; known: sbom, signing, priority_boost, sub_customers."


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    at: dt.datetime
    label: str
    who: str
    state: str


# --- the rules this module owns: "usable license" and "active credential" -------------------------------------------
# Every Python place that needs one calls these (the database spells the same rule in enqueue_build_v2 and
# customer_entitled_license_id). ``at`` is a moment or a database expression (``Now()``: the transaction's time).


def usable_license_q(*, at: Any = None, started: bool = True) -> Q:
    """A usable license: active, not deleted, not past its expiry at ``at`` (now by default) and, unless
    ``started=False``, started by the clock's now (as ``enqueue_build_v2``: expiry against the transaction's
    ``now()``, start against ``clock_timestamp()``, so a license issued earlier in the same transaction counts).
    ``started=False`` mirrors the database functions that do not look at the start (``customer_entitled_license_id``,
    ``customer_require_parent``)."""
    at = timezone.now() if at is None else at
    rule = Q(status=License.Status.ACTIVE, deleted_at=None) & (Q(expires_at__isnull=True) | Q(expires_at__gt=at))
    return rule & Q(starts_at__lte=timezone.now()) if started else rule


def usable_licenses(*, at: Any = None, started: bool = True) -> QuerySet[License]:
    """Licenses that can be used now: active, not deleted, started and not past their expiry."""
    return License.objects.filter(usable_license_q(at=at, started=started))


def license_is_usable(*, license: License, at: dt.datetime | None = None) -> bool:
    """Whether ``license`` is usable at ``at`` (now by default): :func:`usable_license_q` on a loaded license."""
    at = at or timezone.now()
    return (
        license.status == License.Status.ACTIVE
        and license.deleted_at is None
        and (license.expires_at is None or license.expires_at > at)
        and (license.starts_at is None or license.starts_at <= timezone.now())
    )


def active_credentials(*, at: Any = None) -> QuerySet[RegistryCredential]:
    """Registry credentials in use: active, not deleted and not past their expiry at ``at`` (now by default)."""
    at = timezone.now() if at is None else at
    return RegistryCredential.objects.filter(status=RegistryCredential.Status.ACTIVE, deleted_at=None).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=at)
    )


def license_usable_for_customer(*, customer: Customer) -> License | None:
    """The customer's one usable license, or None."""
    return usable_licenses().filter(customer=customer).first()


def license_find_by_key(key: str) -> License | None:
    """The (not deleted) license with this key, found by its blind index without decrypting anything."""
    if not key or not key.strip():
        return None
    return License.objects.filter(license_key_index=license_key_index(key), deleted_at=None).first()


def license_has_feature(*, license: License, feature: str) -> bool:
    """Whether the license has ``feature`` (its tier's default unless the license overrides it)."""
    if feature not in FEATURES:
        raise ValueError(UNKNOWN_FEATURE.format(feature=feature))
    return bool((license.features or {}).get(feature, False))


def customers_with_usable_license_tier(queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    """``queryset`` annotated with ``usable_license_tier`` (None without a usable license), in the same query."""
    queryset = Customer.objects.all() if queryset is None else queryset
    usable = usable_licenses().filter(customer=OuterRef("pk"))
    return queryset.annotate(usable_license_tier=Subquery(usable.values("tier")[:1]))


def licenses_expiring(*, within: dt.timedelta) -> QuerySet[License]:
    """Usable licenses whose expiry falls within ``within`` from now."""
    now = timezone.now()
    return usable_licenses(at=now).filter(expires_at__lte=now + within)


def credentials_active_for_customer(*, customer: Customer) -> QuerySet[RegistryCredential]:
    """The customer's active, unexpired credentials."""
    return active_credentials().filter(customer=customer)


def credential_secret(*, credential: RegistryCredential) -> str:
    """The credential's secret in clear, for the build worker that pushes with it. Never log or display it."""
    return decrypt_secret(credential.secret_encrypted, credential.pk)


def license_key(*, license: License) -> str:
    """The license key in clear (for delivering it again to its owner). Never log or display it."""
    return decrypt_license_key(license.license_key_encrypted, license.pk)


def audit_trail(*, obj: Customer | License | RegistryCredential, limit: int = 20) -> list[AuditEntry]:
    """The newest ``limit`` history events of ``obj`` (pghistory), each with who made it: the admin user, the
    command, or "database" when neither was recorded. Secrets are never part of the history."""
    events = obj.events.select_related("pgh_context")  # type: ignore[union-attr]  # `events`: pghistory's relation
    events = events.order_by("-pgh_created_at", "-pgh_id")[:limit]
    user_ids = {e.pgh_context.metadata.get("user") for e in events if e.pgh_context} - {None}
    users = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username")) if user_ids else {}
    entries = []
    for event in events:
        metadata = event.pgh_context.metadata if event.pgh_context else {}
        if metadata.get("user") is not None:
            who = f"user {users.get(metadata['user'], metadata['user'])}"
        elif metadata.get("command"):
            who = f"command {metadata['command']}"
        else:
            who = "database"
        state = " ".join(f"{name}={getattr(event, name)}" for name in ("tier", "status") if hasattr(event, name))
        entries.append(AuditEntry(at=event.pgh_created_at, label=event.pgh_label, who=who, state=state))
    return entries
