"""Customers, their licenses and their registry credentials (tables ``customers``, ``licenses``,
``registry_credentials``). Invariants are enforced by the database; ``clean()`` mirrors them for forms."""

import json

import pghistory
import pgtrigger
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Case, Q, Value, When
from django.db.models.functions import Cast, Coalesce, Now
from django.db.models.lookups import Exact

from honua.fields import uuid_primary_key
from honua.triggers import update_updated_at_column
from licensing.tiers import FEATURES, TIERS

# Messages of the entitlement rules, raised word for word by the database (licensing/sql/0009_entitlements.sql,
# SQLSTATE HN203 and HN204) and by the Python validation (Customer.clean, licensing.services).
PARENT_NOT_ENTITLED = (
    'Customer "{parent}" cannot have sub-customers: it has no usable license with the sub_customers entitlement.'
)
PARENT_IS_SUB_CUSTOMER = (
    'Customer "{parent}" is itself a sub-customer; sub-customers cannot have sub-customers of their own.'
)
PARENT_DELETED = 'Customer "{parent}" is deleted and cannot have sub-customers.'
HAS_SUB_CUSTOMERS = 'Customer "{customer}" has sub-customers of its own, so it cannot become a sub-customer.'
SUB_CUSTOMERS_NEED_ENTITLEMENT = (
    'Customer "{customer}" has sub-customers, so its usable license must keep the sub_customers entitlement;'
    " move them first."
)
REGISTRY_LIMIT_REACHED = "The license allows {limit} registry credential(s) and this customer already has {count}."


class JSONBConcat(models.Func):
    arg_joiner = " || "
    template = "(%(expressions)s)"
    output_field = models.JSONField()


def _by_tier(attribute, output_field):
    """A CASE over the tier giving each tier's default ``attribute``."""
    whens = []
    for name, tier in TIERS.items():
        value = getattr(tier, attribute)
        if attribute == "features":
            flags = {feature: feature in value for feature in FEATURES}
            value = Cast(Value(json.dumps(flags, sort_keys=True)), models.JSONField())
        else:
            value = Value(value, output_field=output_field)
        whens.append(When(tier=name, then=value))
    return Case(*whens, output_field=output_field)


# The audit trail (django-pghistory): every insert, delete and update of a tracked field, with its context (the
# admin user through the middleware, a command through ``pghistory.context(command=...)``). Secrets, their blind
# index and the generated limits (derived from tier and overrides) are never copied into the history.
_HISTORY_EXCLUDED_ALWAYS = ["updated_at"]


def _history_events():
    # Fresh trackers for each model: pghistory fills an update tracker's condition with its model's fields.
    return pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent()


@pghistory.track(*_history_events(), exclude=_HISTORY_EXCLUDED_ALWAYS)
class Customer(models.Model):
    id = uuid_primary_key()
    name = models.CharField(max_length=200)
    contact_name = models.CharField(max_length=200, blank=True, default="")
    contact_email = models.EmailField(max_length=254, blank=True, default="")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sub_customers",
        help_text="The ASP customer this one is a sub-customer of.",
    )
    publishes_to_shared_cache = models.BooleanField(
        default=True, help_text="Whether its images may be shared when its tier publishes (enterprise may opt out)."
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "customers"
        triggers = [
            update_updated_at_column(),
            # Only a customer whose usable license has sub_customers may be a parent, one level deep
            # (customer_require_parent, HN203). Checked when a parent is set or a sub-customer is undeleted.
            pgtrigger.Trigger(
                name="customers_require_entitled_parent_insert",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition("NEW.parent_id IS NOT NULL AND NEW.deleted_at IS NULL"),
                func="PERFORM customer_require_parent(NEW.id, NEW.name, NEW.parent_id); RETURN NEW;",
            ),
            pgtrigger.Trigger(
                name="customers_require_entitled_parent_update",
                when=pgtrigger.Before,
                operation=pgtrigger.Update,
                condition=pgtrigger.Condition(
                    "NEW.parent_id IS NOT NULL AND NEW.deleted_at IS NULL"
                    " AND (OLD.parent_id IS DISTINCT FROM NEW.parent_id OR OLD.deleted_at IS NOT NULL)"
                ),
                func="PERFORM customer_require_parent(NEW.id, NEW.name, NEW.parent_id); RETURN NEW;",
            ),
        ]
        ordering = ["name"]
        indexes = [
            models.Index(fields=["name"], name="customers_name_live_idx", condition=Q(deleted_at__isnull=True)),
            models.Index(fields=["deleted_at"], name="customers_deleted_idx", condition=Q(deleted_at__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="customers_name_not_empty"),
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="customers_not_own_parent"),
        ]

    def __str__(self) -> str:
        return self.name

    def parent_problem(self) -> str | None:
        """Why ``parent`` cannot be this customer's parent, or None (the database's customer_require_parent)."""
        if self.parent_id is None or self.deleted_at is not None:
            return None
        parent = Customer.objects.filter(pk=self.parent_id).first()
        if parent is None:
            return None  # the foreign key reports it
        if parent.deleted_at is not None:
            return PARENT_DELETED.format(parent=parent.name)
        if parent.parent_id is not None:
            return PARENT_IS_SUB_CUSTOMER.format(parent=parent.name)
        if self.pk is not None and Customer.objects.filter(parent_id=self.pk, deleted_at=None).exists():
            return HAS_SUB_CUSTOMERS.format(customer=self.name)
        from licensing.selectors import usable_licenses  # selectors import the models

        entitled = (
            usable_licenses(at=Now(), started=False)  # as customer_require_parent
            .filter(customer_id=parent.pk, features__sub_customers=True)
            .exists()
        )
        if not entitled:
            return PARENT_NOT_ENTITLED.format(parent=parent.name)
        return None

    def clean(self) -> None:
        """Mirror the database's parent rule with its message."""
        if self.parent_id is not None and self.parent_id == self.pk:
            raise ValidationError({"parent": "A customer cannot be its own parent."})
        problem = self.parent_problem()
        if problem:
            raise ValidationError({"parent": problem})


@pghistory.track(
    *_history_events(),
    exclude=[
        *_HISTORY_EXCLUDED_ALWAYS,
        "license_key_encrypted",
        "license_key_index",
        "monthly_build_quota",
        "max_concurrent_builds",
        "max_registries",
        "features",
        "scheduling_weight",
    ],
)
class License(models.Model):
    class Tier(models.TextChoices):
        CORE = "core"
        PRO = "pro"
        ENTERPRISE = "enterprise"
        ASP = "asp"

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"
        EXPIRED = "expired"
        REVOKED = "revoked"

    id = uuid_primary_key()
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="licenses")
    tier = models.CharField(max_length=16, choices=Tier.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    is_trial = models.BooleanField(default=False)
    # Secret: AES-256-GCM ciphertext (honua.crypto) and its HMAC-SHA256 blind index for lookups.
    license_key_encrypted = models.TextField(editable=False)
    license_key_index = models.CharField(max_length=64, unique=True, editable=False)
    # Per-license overrides (null: the tier's default), and the effective values the database derives.
    monthly_build_quota_override = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent_builds_override = models.PositiveIntegerField(null=True, blank=True)
    max_registries_override = models.PositiveIntegerField(null=True, blank=True)
    feature_overrides = models.JSONField(default=dict, blank=True, help_text='e.g. {"signing": true}')
    scheduling_weight_override = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Share of the build farm when tenants compete (null: the tier's weight)."
    )
    monthly_build_quota = models.GeneratedField(
        expression=Coalesce("monthly_build_quota_override", _by_tier("monthly_build_quota", models.IntegerField())),
        output_field=models.IntegerField(),
        db_persist=True,
    )
    max_concurrent_builds = models.GeneratedField(
        expression=Coalesce("max_concurrent_builds_override", _by_tier("max_concurrent_builds", models.IntegerField())),
        output_field=models.IntegerField(),
        db_persist=True,
    )
    max_registries = models.GeneratedField(
        expression=Coalesce("max_registries_override", _by_tier("max_registries", models.IntegerField())),
        output_field=models.IntegerField(null=True),
        db_persist=True,
        help_text="Null: unlimited.",
    )
    features = models.GeneratedField(
        expression=JSONBConcat(_by_tier("features", models.JSONField()), "feature_overrides"),
        output_field=models.JSONField(),
        db_persist=True,
    )
    scheduling_weight = models.GeneratedField(
        expression=Coalesce("scheduling_weight_override", _by_tier("scheduling_weight", models.IntegerField())),
        output_field=models.IntegerField(),
        db_persist=True,
    )
    starts_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "licenses"
        triggers = [
            update_updated_at_column(),
            # A parent's active license keeps sub_customers while it has live sub-customers (HN203). AFTER
            # triggers: the generated column ``features`` is not computed yet in a BEFORE trigger.
            pgtrigger.Trigger(
                name="licenses_keep_sub_customers_insert",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition(
                    "NEW.status = 'active' AND NEW.deleted_at IS NULL"
                    " AND NOT license_features_include(NEW.features, 'sub_customers')"
                ),
                func="PERFORM license_require_sub_customers_kept(NEW.customer_id); RETURN NULL;",
            ),
            pgtrigger.Trigger(
                name="licenses_keep_sub_customers_update",
                when=pgtrigger.After,
                operation=pgtrigger.Update,
                condition=pgtrigger.Condition(
                    "NEW.status = 'active' AND NEW.deleted_at IS NULL"
                    " AND NOT license_features_include(NEW.features, 'sub_customers')"
                    " AND (OLD.features IS DISTINCT FROM NEW.features OR OLD.status IS DISTINCT FROM NEW.status"
                    " OR OLD.deleted_at IS NOT NULL OR OLD.customer_id IS DISTINCT FROM NEW.customer_id)"
                ),
                func="PERFORM license_require_sub_customers_kept(NEW.customer_id); RETURN NULL;",
            ),
        ]
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer", "status"], name="licenses_customer_status_idx"),
            models.Index(
                fields=["expires_at"],
                name="licenses_active_expiry_idx",
                condition=Q(status="active", deleted_at__isnull=True, expires_at__isnull=False),
            ),
            models.Index(fields=["tier", "status"], name="licenses_tier_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(tier__in=["core", "pro", "enterprise", "asp"]), name="licenses_tier_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended", "expired", "revoked"]), name="licenses_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("starts_at")),
                name="licenses_expires_after_start",
            ),
            models.CheckConstraint(
                condition=Q(is_trial=False) | Q(expires_at__isnull=False), name="licenses_trial_expires"
            ),
            models.CheckConstraint(
                condition=Q(license_key_index__regex=r"^[0-9a-f]{64}$"), name="licenses_key_index_hex"
            ),
            models.CheckConstraint(
                condition=Q(license_key_encrypted__regex=r"^v1:[0-9]+:"), name="licenses_key_encrypted_format"
            ),
            # The features column is the tier's flags || these overrides: both must be JSON objects.
            models.CheckConstraint(
                condition=Exact(
                    models.Func("feature_overrides", function="jsonb_typeof", output_field=models.TextField()),
                    "object",
                ),
                name="licenses_feature_overrides_object",
            ),
            # One usable license per customer; an active license past expires_at is flipped by expire_licenses().
            models.CheckConstraint(
                condition=Q(scheduling_weight_override__isnull=True) | Q(scheduling_weight_override__gte=1),
                name="licenses_scheduling_weight_pos",
            ),
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(status="active", deleted_at__isnull=True),
                name="licenses_one_active_per_customer",
            ),
        ]

    def __str__(self) -> str:
        trial = " trial" if self.is_trial else ""
        return f"{self.get_tier_display()}{trial} license ({self.status})"

    def __repr__(self) -> str:  # never the key
        return f"<License {self.pk} tier={self.tier} status={self.status}>"

    def clean(self) -> None:
        """Mirror the database's checks with messages a person understands."""
        errors = {}
        if self.tier and self.tier not in TIERS:
            errors["tier"] = f"Unknown tier {self.tier!r}; choose one of {', '.join(TIERS)}."
        if self.expires_at and self.starts_at and self.expires_at <= self.starts_at:
            errors["expires_at"] = "The expiry must be after the start."
        if self.is_trial and not self.expires_at:
            errors["expires_at"] = "A trial license needs an expiry date."
        unknown = sorted(set(self.feature_overrides or {}) - set(FEATURES))
        if unknown:
            errors["feature_overrides"] = f"Unknown feature(s) {', '.join(unknown)}; known: {', '.join(FEATURES)}."
        elif any(not isinstance(value, bool) for value in (self.feature_overrides or {}).values()):
            errors["feature_overrides"] = "Each feature override must be true or false."
        if errors:
            raise ValidationError(errors)


@pghistory.track(*_history_events(), exclude=[*_HISTORY_EXCLUDED_ALWAYS, "secret_encrypted"])
class RegistryCredential(models.Model):
    class RegistryType(models.TextChoices):
        DOCKERHUB = "dockerhub", "Docker Hub"
        ECR = "ecr", "Amazon ECR"
        GCR = "gcr", "Google Artifact Registry"
        ACR = "acr", "Azure Container Registry"
        GHCR = "ghcr", "GitHub Container Registry"
        QUAY = "quay", "Quay"
        HARBOR = "harbor", "Harbor"
        GENERIC = "generic", "Other OCI registry"

    class Status(models.TextChoices):
        ACTIVE = "active"
        EXPIRED = "expired"
        REVOKED = "revoked"

    id = uuid_primary_key()
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="registry_credentials")
    registry_type = models.CharField(max_length=16, choices=RegistryType.choices)
    registry_url = models.CharField(max_length=500)
    username = models.CharField(max_length=200)
    # Secret: AES-256-GCM ciphertext (honua.crypto).
    secret_encrypted = models.TextField(editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now(), editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "registry_credentials"
        triggers = [
            update_updated_at_column(),
            # max_registries of the customer's license, under that license's row lock (HN204).
            pgtrigger.Trigger(
                name="registry_credentials_limit_insert",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition("NEW.status = 'active' AND NEW.deleted_at IS NULL"),
                func="PERFORM registry_credential_require_room(NEW.customer_id, NEW.id); RETURN NEW;",
            ),
            pgtrigger.Trigger(
                name="registry_credentials_limit_update",
                when=pgtrigger.Before,
                operation=pgtrigger.Update,
                condition=pgtrigger.Condition(
                    "NEW.status = 'active' AND NEW.deleted_at IS NULL"
                    " AND (OLD.status <> 'active' OR OLD.deleted_at IS NOT NULL"
                    " OR OLD.customer_id IS DISTINCT FROM NEW.customer_id)"
                ),
                func="PERFORM registry_credential_require_room(NEW.customer_id, NEW.id); RETURN NEW;",
            ),
        ]
        ordering = ["registry_url"]
        indexes = [
            models.Index(
                fields=["customer"], name="registry_creds_active_idx", condition=Q(status="active", deleted_at=None)
            ),
            models.Index(
                fields=["expires_at"],
                name="registry_creds_expiry_idx",
                condition=Q(status__in=["active", "expired"], expires_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(registry_type__in=["dockerhub", "ecr", "gcr", "acr", "ghcr", "quay", "harbor", "generic"]),
                name="registry_creds_type_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "expired", "revoked"]), name="registry_creds_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="revoked", revoked_at__isnull=False) | ~Q(status="revoked"),
                name="registry_creds_revoked_at",
            ),
            models.CheckConstraint(condition=~Q(registry_url=""), name="registry_creds_url_not_empty"),
            models.CheckConstraint(condition=~Q(secret_encrypted=""), name="registry_creds_secret_not_empty"),
            models.CheckConstraint(
                condition=Q(secret_encrypted__regex=r"^v1:[0-9]+:"), name="registry_creds_secret_encrypted_format"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.registry_url}"

    def __repr__(self) -> str:  # never the secret
        return f"<RegistryCredential {self.pk} {self.registry_type} status={self.status}>"
