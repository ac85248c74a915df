"""Writes for customers, licenses and registry credentials.

Every function is keyword-only, runs in one transaction and either does all it says or changes nothing, raising
``LicensingError`` (a ``ValidationError``, so forms show it) with one of the messages below. Races are settled by
row locks: issuing locks the customer row, adding a credential locks the customer's usable license row, and the
database's partial unique index ``licenses_one_active_per_customer`` is the last word. The locks are FOR NO KEY
UPDATE: they serialize these services without blocking the foreign-key checks of builds being inserted for the
same customer and license (which take KEY SHARE), so they cannot deadlock with the build queue.
"""

import dataclasses
import datetime as dt
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from honua import errors
from licensing import selectors
from licensing.keys import encrypt_license_key, encrypt_secret, generate_license_key, license_key_index
from licensing.models import (
    PARENT_NOT_ENTITLED,  # noqa: F401 (re-exported: the messages callers and tests rely on are listed here)
    REGISTRY_LIMIT_REACHED,
    SUB_CUSTOMERS_NEED_ENTITLEMENT,
    Customer,
    License,
    RegistryCredential,
)
from licensing.tiers import FEATURES, TIERS

# Messages callers and tests rely on.
UNKNOWN_TIER = "Unknown tier {tier!r}; choose one of core, pro, enterprise, asp."
NEGATIVE_LIMIT = "The {field} must be zero or more, not {value}."
EXPIRES_BEFORE_START = "The expiry must be after the start."
EXPIRES_IN_PAST = "The expiry must be in the future."
TRIAL_NEEDS_EXPIRY = "A trial license needs an expiry date."
TRIAL_DAYS_INVALID = "A trial lasts between 1 and 90 days."
ALREADY_LICENSED = "This customer already has a usable license; suspend, revoke or let it expire first."
NO_USABLE_LICENSE = "This customer has no usable license."
# REGISTRY_LIMIT_REACHED and the sub-customer messages (PARENT_NOT_ENTITLED, ...) live in licensing.models: the
# database raises them too (licensing/sql/0009_entitlements.sql).
DOWNGRADE_OVER_REGISTRY_LIMIT = (
    "The {tier} tier allows {limit} registry credential(s) but this customer has {count} active; revoke some first."
)
EMPTY_SECRET = "The secret must not be empty."
EMPTY_FIELD = "{field} must not be empty."
UNKNOWN_REGISTRY_TYPE = "Unknown registry type {value!r}."
UNKNOWN_FEATURE = "Unknown feature(s) {names}; known: sbom, signing, priority_boost, sub_customers."
FEATURE_NOT_BOOLEAN = "Each feature override must be true or false."
CUSTOMER_DELETED = "This customer is deleted."
LICENSE_NOT_ACTIVE = "Only an active license can be {action} (this one is {status})."
LICENSE_NOT_SUSPENDED = "Only a suspended license can be reinstated (this one is {status})."
LICENSE_REVOKED = "A revoked license cannot be {action}."
CREDENTIAL_REVOKED = "This credential is revoked."

DEFAULT_TRIAL_DAYS = 14
_UNSET: Any = object()


class LicensingError(ValidationError, errors.HonuaError):
    """A licensing rule was broken; nothing was changed. ``str()`` is the message alone. A ``ValidationError`` (so
    forms show it) and a ``honua.errors.HonuaError``."""

    def __str__(self) -> str:
        return "; ".join(self.messages)


@dataclasses.dataclass(frozen=True)
class IssuedLicense:
    """A newly issued license and its plaintext key: the only time a caller gets the key without decrypting it
    (the admin shows it once, on the page answering the issue; it is stored only encrypted)."""

    license: License
    key: str = dataclasses.field(repr=False)


# --- validation -------------------------------------------------------------------------------------------------


def _validate_tier(tier: str) -> None:
    if tier not in TIERS:
        raise LicensingError({"tier": UNKNOWN_TIER.format(tier=tier)})


def _validate_limits(limits: dict[str, int | None]) -> None:
    for field, value in limits.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise LicensingError({field: NEGATIVE_LIMIT.format(field=field.replace("_", " "), value=value)})


def _validate_features(feature_overrides: dict[str, bool]) -> None:
    unknown = sorted(set(feature_overrides) - set(FEATURES))
    if unknown:
        raise LicensingError({"feature_overrides": UNKNOWN_FEATURE.format(names=", ".join(unknown))})
    if not all(isinstance(value, bool) for value in feature_overrides.values()):
        raise LicensingError({"feature_overrides": FEATURE_NOT_BOOLEAN})


def _validate_period(*, starts_at: dt.datetime, expires_at: dt.datetime | None, is_trial: bool) -> None:
    if is_trial and expires_at is None:
        raise LicensingError({"expires_at": TRIAL_NEEDS_EXPIRY})
    if expires_at is not None:
        if expires_at <= starts_at:
            raise LicensingError({"expires_at": EXPIRES_BEFORE_START})
        if expires_at <= timezone.now():
            raise LicensingError({"expires_at": EXPIRES_IN_PAST})


def _lock_customer(customer: Customer) -> Customer:
    locked = Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)
    if locked.deleted_at is not None:
        raise LicensingError(CUSTOMER_DELETED)
    return locked


def _lock_license(license: License) -> License:
    return License.objects.select_for_update(no_key=True).get(pk=license.pk)


def _expire_lapsed(customer: Customer, *, exclude: License | None = None) -> None:
    """An active license past its expiry still holds the one-active slot until expire_licenses() runs; free it."""
    lapsed = License.objects.filter(
        customer=customer, status=License.Status.ACTIVE, deleted_at=None, expires_at__lte=timezone.now()
    )
    if exclude is not None:
        lapsed = lapsed.exclude(pk=exclude.pk)
    lapsed.update(status=License.Status.EXPIRED)


def _has_usable_license(customer: Customer, *, exclude: License | None = None) -> bool:
    licenses = License.objects.filter(customer=customer, status=License.Status.ACTIVE, deleted_at=None)
    if exclude is not None:
        licenses = licenses.exclude(pk=exclude.pk)
    return licenses.exists()


def _is_one_active_violation(error: IntegrityError) -> bool:
    return errors.constraint_name_of(error) == "licenses_one_active_per_customer"


# --- customers ----------------------------------------------------------------------------------------------------


def customer_create(
    *, name: str, contact_name: str = "", contact_email: str = "", metadata: dict | None = None
) -> Customer:
    """A new customer (no license)."""
    if not name.strip():
        raise LicensingError({"name": EMPTY_FIELD.format(field="The name")})
    customer = Customer(
        name=name.strip(), contact_name=contact_name, contact_email=contact_email, metadata=metadata or {}
    )
    customer.full_clean(exclude=["parent"])
    customer.save()
    return customer


@transaction.atomic
def customer_save(*, customer: Customer) -> Customer:
    """Save a customer edited as a whole (the admin's add and change forms), in one statement as before, after the
    checks the database makes: a name, and the parent rule (``Customer.clean``, the database's
    customer_require_parent). An existing customer's row is locked first (FOR NO KEY UPDATE), like every change
    here."""
    if not (customer.name or "").strip():
        raise LicensingError({"name": EMPTY_FIELD.format(field="The name")})
    customer.clean()  # the parent rule, with its message (a ValidationError)
    if customer.pk is not None and not customer._state.adding:
        Customer.objects.select_for_update(no_key=True).filter(pk=customer.pk).exists()
    customer.save()
    return customer


@transaction.atomic
def customer_set_parent(*, customer: Customer, parent: Customer | None) -> Customer:
    """Make ``customer`` a sub-customer of ``parent`` (None: a customer of its own again). The parent needs a usable
    license with the ``sub_customers`` entitlement and must not be a sub-customer itself; a customer with
    sub-customers cannot become one (messages ``PARENT_NOT_ENTITLED`` and the others in licensing.models; the
    database's trigger enforces the same with SQLSTATE HN203)."""
    customer = _lock_customer(customer)
    customer.parent = parent
    problem = customer.parent_problem()
    if problem:
        raise LicensingError({"parent": problem})
    customer.save(update_fields=["parent"])
    return customer


def _sub_customers_problem(license: License, features: dict) -> str | None:
    """The message when an active license would lose sub_customers while its customer has live sub-customers."""
    if (
        license.status == License.Status.ACTIVE
        and license.deleted_at is None
        and not features.get("sub_customers", False)
        and Customer.objects.filter(parent_id=license.customer_id, deleted_at=None).exists()
    ):
        return SUB_CUSTOMERS_NEED_ENTITLEMENT.format(customer=license.customer.name)
    return None


def _features_of(tier: str, feature_overrides: dict) -> dict:
    flags = {feature: feature in TIERS[tier].features for feature in FEATURES}
    return {**flags, **(feature_overrides or {})}


@sensitive_variables("issued")
@transaction.atomic
def customer_create_with_trial(
    *,
    name: str,
    contact_name: str = "",
    contact_email: str = "",
    tier: str = License.Tier.PRO,
    trial_days: int = DEFAULT_TRIAL_DAYS,
    metadata: dict | None = None,
) -> tuple[Customer, IssuedLicense]:
    """A new customer with a trial license of ``tier`` that expires after ``trial_days`` days."""
    if not 1 <= trial_days <= 90:
        raise LicensingError({"trial_days": TRIAL_DAYS_INVALID})
    customer = customer_create(name=name, contact_name=contact_name, contact_email=contact_email, metadata=metadata)
    issued = license_issue(
        customer=customer, tier=tier, is_trial=True, expires_at=timezone.now() + dt.timedelta(days=trial_days)
    )
    return customer, issued


# --- licenses -----------------------------------------------------------------------------------------------------


@sensitive_variables("key")
@transaction.atomic
def license_issue(
    *,
    customer: Customer,
    tier: str,
    expires_at: dt.datetime | None = None,
    starts_at: dt.datetime | None = None,
    is_trial: bool = False,
    monthly_build_quota: int | None = None,
    max_concurrent_builds: int | None = None,
    max_registries: int | None = None,
    feature_overrides: dict[str, bool] | None = None,
    notes: str = "",
) -> IssuedLicense:
    """Issue an active license with a new key (returned once, in clear; stored encrypted and blind-indexed).

    Limits left as None follow the tier. Fails with ``ALREADY_LICENSED`` when the customer has a usable license,
    including when another transaction issues one at the same moment (the customer row is locked, and the
    database's unique index decides if anything bypasses the lock).
    """
    _validate_tier(tier)
    limits = {
        "monthly_build_quota": monthly_build_quota,
        "max_concurrent_builds": max_concurrent_builds,
        "max_registries": max_registries,
    }
    _validate_limits(limits)
    _validate_features(feature_overrides or {})
    now = timezone.now()
    _validate_period(starts_at=starts_at or now, expires_at=expires_at, is_trial=is_trial)

    customer = _lock_customer(customer)
    _expire_lapsed(customer)
    if _has_usable_license(customer):
        raise LicensingError(ALREADY_LICENSED)
    features = _features_of(tier, feature_overrides or {})
    if not features["sub_customers"] and Customer.objects.filter(parent_id=customer.pk, deleted_at=None).exists():
        raise LicensingError(SUB_CUSTOMERS_NEED_ENTITLEMENT.format(customer=customer.name))

    license_id = uuid.uuid4()
    key = generate_license_key()
    license = License(
        id=license_id,
        customer=customer,
        tier=tier,
        status=License.Status.ACTIVE,
        is_trial=is_trial,
        license_key_encrypted=encrypt_license_key(key, license_id),
        license_key_index=license_key_index(key),
        monthly_build_quota_override=monthly_build_quota,
        max_concurrent_builds_override=max_concurrent_builds,
        max_registries_override=max_registries,
        feature_overrides=feature_overrides or {},
        starts_at=starts_at or now,
        expires_at=expires_at,
        notes=notes,
    )
    try:
        with transaction.atomic():
            license.save(force_insert=True)
    except IntegrityError as error:
        if _is_one_active_violation(error):
            raise LicensingError(ALREADY_LICENSED) from None
        raise
    license.refresh_from_db()
    return IssuedLicense(license=license, key=key)


def license_tier_change_problem(
    *, license: License, tier: str, max_registries_override: int | None = _UNSET
) -> str | None:
    """Why ``license`` cannot move to ``tier`` now, or None (a check for forms; the service re-checks)."""
    if tier not in TIERS:
        return UNKNOWN_TIER.format(tier=tier)
    if license.status == License.Status.REVOKED:
        return LICENSE_REVOKED.format(action="changed")
    problem = _sub_customers_problem(license, _features_of(tier, license.feature_overrides))
    if problem:
        return problem
    limit = license.max_registries_override if max_registries_override is _UNSET else max_registries_override
    if limit is None:
        limit = TIERS[tier].max_registries
    if limit is not None:
        count = _active_credential_count(license.customer_id)
        if count > limit:
            return DOWNGRADE_OVER_REGISTRY_LIMIT.format(tier=tier, limit=limit, count=count)
    return None


@transaction.atomic
def license_change_tier(*, license: License, tier: str, clear_overrides: bool = False) -> License:
    """Move a license to ``tier`` (upgrade or downgrade). Its limits follow the new tier except where the license
    overrides them (``clear_overrides`` drops the overrides). A downgrade that would leave more active registry
    credentials than the new limit is refused."""
    _validate_tier(tier)
    license = _lock_license(license)
    if clear_overrides:
        license.monthly_build_quota_override = None
        license.max_concurrent_builds_override = None
        license.max_registries_override = None
        license.feature_overrides = {}
    problem = license_tier_change_problem(license=license, tier=tier)
    if problem:
        raise LicensingError(problem)
    license.tier = tier
    license.save()
    license.refresh_from_db()
    return license


@transaction.atomic
def license_set_overrides(
    *,
    license: License,
    monthly_build_quota: int | None = _UNSET,
    max_concurrent_builds: int | None = _UNSET,
    max_registries: int | None = _UNSET,
    feature_overrides: dict[str, bool] | None = _UNSET,
) -> License:
    """Set (an int) or clear (None) a license's own limits; arguments left out stay as they are."""
    limits = {
        name: value
        for name, value in {
            "monthly_build_quota": monthly_build_quota,
            "max_concurrent_builds": max_concurrent_builds,
            "max_registries": max_registries,
        }.items()
        if value is not _UNSET
    }
    _validate_limits(limits)
    if feature_overrides is not _UNSET:
        _validate_features(feature_overrides or {})
    license = _lock_license(license)
    for name, value in limits.items():
        setattr(license, f"{name}_override", value)
    if feature_overrides is not _UNSET:
        license.feature_overrides = feature_overrides or {}
        problem = _sub_customers_problem(license, _features_of(license.tier, license.feature_overrides))
        if problem:
            raise LicensingError({"feature_overrides": problem})
    license.save()
    license.refresh_from_db()
    return license


_STOPPED_AT: dict[str, str] = {License.Status.SUSPENDED: "suspended_at", License.Status.REVOKED: "revoked_at"}


def _stop_license(license: License, status: str, *, reason: str) -> License:
    """Suspend or revoke a locked license now: its status, that status's time stamp (``suspended_at``,
    ``revoked_at``) and, when given, the reason appended to its notes ("Suspended: ...")."""
    license.status = status
    setattr(license, _STOPPED_AT[status], timezone.now())
    if reason:
        license.notes = f"{license.notes}\n{status.capitalize()}: {reason}".strip()
    license.save()
    return license


@transaction.atomic
def license_suspend(*, license: License, reason: str = "") -> License:
    """Suspend an active license: it stops being usable until reinstated."""
    license = _lock_license(license)
    if license.status != License.Status.ACTIVE:
        raise LicensingError(LICENSE_NOT_ACTIVE.format(action="suspended", status=license.status))
    return _stop_license(license, License.Status.SUSPENDED, reason=reason)


@transaction.atomic
def license_reinstate(*, license: License) -> License:
    """Make a suspended license active again, unless the customer has another usable license by now."""
    customer = _lock_customer(license.customer)
    license = _lock_license(license)
    if license.status != License.Status.SUSPENDED:
        raise LicensingError(LICENSE_NOT_SUSPENDED.format(status=license.status))
    _expire_lapsed(customer, exclude=license)
    if _has_usable_license(customer, exclude=license):
        raise LicensingError(ALREADY_LICENSED)
    license.status = License.Status.ACTIVE
    license.suspended_at = None
    license.save()
    return license


@transaction.atomic
def license_revoke(*, license: License, reason: str = "") -> License:
    """Revoke a license for good (idempotent)."""
    license = _lock_license(license)
    if license.status == License.Status.REVOKED:
        return license
    return _stop_license(license, License.Status.REVOKED, reason=reason)


@transaction.atomic
def license_renew(*, license: License, expires_at: dt.datetime | None, end_trial: bool = False) -> License:
    """Extend a license to ``expires_at`` (None: no expiry). An expired license becomes active again, unless the
    customer has another usable license; ``end_trial`` turns a trial into a paid license."""
    customer = _lock_customer(license.customer)
    license = _lock_license(license)
    if license.status == License.Status.REVOKED:
        raise LicensingError(LICENSE_REVOKED.format(action="renewed"))
    is_trial = license.is_trial and not end_trial
    _validate_period(starts_at=license.starts_at, expires_at=expires_at, is_trial=is_trial)
    if license.status in (License.Status.EXPIRED, License.Status.ACTIVE):
        _expire_lapsed(customer, exclude=license)
        if _has_usable_license(customer, exclude=license):
            raise LicensingError(ALREADY_LICENSED)
        license.status = License.Status.ACTIVE
    license.expires_at = expires_at
    license.is_trial = is_trial
    try:
        with transaction.atomic():
            license.save()
    except IntegrityError as error:
        if _is_one_active_violation(error):
            raise LicensingError(ALREADY_LICENSED) from None
        raise
    return license


@transaction.atomic
def license_set_notes(*, license: License, notes: str) -> None:
    """Replace a license's notes (free text for operators; nothing else changes)."""
    if not isinstance(notes, str):
        raise LicensingError({"notes": "The notes must be text."})
    License.objects.filter(pk=license.pk).update(notes=notes)


def license_soft_delete(*, license: License) -> License:
    """Mark a license deleted (kept for history; purged later by maintenance)."""
    license = _lock_license(license)
    if license.deleted_at is None:
        license.deleted_at = timezone.now()
        license.save()
    return license


# --- registry credentials -----------------------------------------------------------------------------------------


def _active_credential_count(customer_id) -> int:
    return RegistryCredential.objects.filter(
        customer_id=customer_id, status=RegistryCredential.Status.ACTIVE, deleted_at=None
    ).count()


def _entitled_license(customer: Customer, *, lock: bool) -> License | None:
    """The license whose limits apply to ``customer``: its own usable license, else (a sub-customer) its parent's
    when that license has sub_customers (the database's customer_entitled_license_id); locked FOR NO KEY UPDATE
    when ``lock``."""
    usable = selectors.usable_licenses(started=False)  # as customer_entitled_license_id
    if lock:
        usable = usable.select_for_update(no_key=True)
    license = usable.filter(customer=customer).first()
    if license is None and customer.parent_id is not None:
        license = usable.filter(customer_id=customer.parent_id, features__sub_customers=True).first()
    return license


def _lock_usable_license(customer: Customer) -> License:
    license = _entitled_license(customer, lock=True)
    if license is None:
        raise LicensingError(NO_USABLE_LICENSE)
    return license


def credential_limit_problem(*, customer: Customer) -> str | None:
    """Why a credential cannot be added for ``customer`` now, or None (a check for forms, without locks;
    ``credential_add`` decides under a lock)."""
    license = _entitled_license(customer, lock=False)
    if license is None:
        return NO_USABLE_LICENSE
    if license.max_registries is not None:
        count = _active_credential_count(customer.pk)
        if count >= license.max_registries:
            return REGISTRY_LIMIT_REACHED.format(limit=license.max_registries, count=count)
    return None


# Functions given a secret open their transaction inside (not with @transaction.atomic, whose wrapper frame would
# hold the secret in its keyword arguments, out of @sensitive_variables' reach in error reports).
@sensitive_variables("secret")
def credential_add(
    *,
    customer: Customer,
    registry_type: str,
    registry_url: str,
    username: str,
    secret: str,
    expires_at: dt.datetime | None = None,
) -> RegistryCredential:
    """Store a registry credential with its secret encrypted. The customer needs a usable license, and its
    ``max_registries`` bounds the active credentials; the license row is locked, so concurrent adds cannot
    together pass the limit."""
    if not secret or not secret.strip():
        raise LicensingError({"secret": EMPTY_SECRET})
    if registry_type not in RegistryCredential.RegistryType.values:
        raise LicensingError({"registry_type": UNKNOWN_REGISTRY_TYPE.format(value=registry_type)})
    if not registry_url.strip():
        raise LicensingError({"registry_url": EMPTY_FIELD.format(field="The registry URL")})
    if not username.strip():
        raise LicensingError({"username": EMPTY_FIELD.format(field="The username")})
    if expires_at is not None and expires_at <= timezone.now():
        raise LicensingError({"expires_at": EXPIRES_IN_PAST})
    if customer.deleted_at is not None:
        raise LicensingError(CUSTOMER_DELETED)

    with transaction.atomic():
        license = _lock_usable_license(customer)
        if license.max_registries is not None:
            count = _active_credential_count(customer.pk)
            if count >= license.max_registries:
                raise LicensingError(REGISTRY_LIMIT_REACHED.format(limit=license.max_registries, count=count))

        credential_id = uuid.uuid4()
        credential = RegistryCredential(
            id=credential_id,
            customer=customer,
            registry_type=registry_type,
            registry_url=registry_url.strip(),
            username=username.strip(),
            secret_encrypted=encrypt_secret(secret, credential_id),
            expires_at=expires_at,
        )
        credential.save(force_insert=True)
        credential.refresh_from_db()
        return credential


@sensitive_variables("secret")
def credential_rotate_secret(*, credential: RegistryCredential, secret: str) -> RegistryCredential:
    """Replace a credential's secret (encrypted under the newest key)."""
    if not secret or not secret.strip():
        raise LicensingError({"secret": EMPTY_SECRET})
    with transaction.atomic():
        credential = RegistryCredential.objects.select_for_update(no_key=True).get(pk=credential.pk)
        if credential.status == RegistryCredential.Status.REVOKED:
            raise LicensingError(CREDENTIAL_REVOKED)
        credential.secret_encrypted = encrypt_secret(secret, credential.pk)
        credential.save(update_fields=["secret_encrypted"])
    return credential


def credential_update(*, credential: RegistryCredential, registry_url: str, username: str) -> None:
    """Change where and as whom a credential logs in (its secret: :func:`credential_rotate_secret`)."""
    for field, label, value in (
        ("registry_url", "The registry URL", registry_url),
        ("username", "The username", username),
    ):
        if not isinstance(value, str) or not value.strip():
            raise LicensingError({field: EMPTY_FIELD.format(field=label)})
    RegistryCredential.objects.filter(pk=credential.pk).update(registry_url=registry_url, username=username)


@transaction.atomic
def credential_revoke(*, credential: RegistryCredential) -> RegistryCredential:
    """Revoke a credential (idempotent)."""
    credential = RegistryCredential.objects.select_for_update(no_key=True).get(pk=credential.pk)
    if credential.status != RegistryCredential.Status.REVOKED:
        credential.status = RegistryCredential.Status.REVOKED
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["status", "revoked_at"])
    return credential


def credential_mark_used(*, credential: RegistryCredential) -> None:
    """Record that a build used the credential now."""
    RegistryCredential.objects.filter(pk=credential.pk).update(last_used_at=timezone.now())


# --- maintenance --------------------------------------------------------------------------------------------------


# django-pghistory attaches its context (who ran it) to every statement except those starting with SELECT, so
# the maintenance functions are called from a CTE: the history then names the command that ran them.
def licenses_expire() -> int:
    """Run ``expire_licenses()``; how many licenses it expired."""
    with connection.cursor() as cursor:
        cursor.execute("WITH run AS (SELECT expire_licenses() AS changed) TABLE run")
        return cursor.fetchone()[0]


def credentials_revoke_expired(*, grace_days: int = 7) -> int:
    """Run ``revoke_expired_credentials(grace_days)``; how many credentials it changed."""
    if grace_days < 0:
        raise LicensingError({"grace_days": "The grace period must be zero or more days."})
    with connection.cursor() as cursor:
        cursor.execute("WITH run AS (SELECT revoke_expired_credentials(%s) AS changed) TABLE run", [grace_days])
        return cursor.fetchone()[0]
