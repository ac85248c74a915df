"""Admin for customers, licenses and registry credentials. Thin: writes go through ``licensing.services``.

Secrets are write-only: the license key is shown once, on the page that answers its issue, and a registry secret
is typed into a password field that is never filled back. No page renders a stored secret or anything derived
from one.
"""

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from honua.admin_utils import audit_admin_action, html_table
from licensing import selectors, services
from licensing.models import Customer, License, RegistryCredential

STATUS_COLOURS = {
    "active": "#2e7d32",
    "suspended": "#ef6c00",
    "expired": "#757575",
    "revoked": "#c62828",
}
RENEWAL_PERIOD = dt.timedelta(days=365)


def _badge(status: str):
    colour = STATUS_COLOURS.get(status, "#555")
    return format_html(
        '<span style="color:#fff;background:{};padding:1px 6px;border-radius:8px">{}</span>', colour, status
    )


@admin.display(description="audit trail")
def audit_trail(obj):
    """The object's recent history (pghistory) with who made each change; secrets are never in it."""
    entries = selectors.audit_trail(obj=obj) if obj and obj.pk else []
    if not entries:
        return "-"
    return html_table(
        ["when", "event", "by", "state"], ((f"{e.at:%Y-%m-%d %H:%M:%S}", e.label, e.who, e.state) for e in entries)
    )


class NoDeleteMixin:
    """Rows are retired (revoked, expired, soft-deleted) through the services, never deleted from the admin: the
    audit trail and the builds that reference them stay whole."""

    def has_delete_permission(self, request, obj=None):
        return False


class AddChangeFormsMixin:
    """One form to add (through a service), another to change: on the change page the editable fields stand
    after the first ``readonly_lead`` read-only fields and before the rest."""

    add_form: type[forms.ModelForm]
    change_form: type[forms.ModelForm]
    readonly_lead: int

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = self.change_form if obj else self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_form.Meta.fields
        lead = self.readonly_lead
        return [*self.readonly_fields[:lead], *self.change_form.Meta.fields, *self.readonly_fields[lead:]]


def _state(obj) -> str:
    """What an action changes on a license or credential, in words (never a secret)."""
    expires = getattr(obj, "expires_at", None)
    return f"{obj.status}, expires {expires:%Y-%m-%d}" if expires else str(obj.status)


def _run(modeladmin, request, queryset, service, verb: str, action: str) -> None:
    """Call ``service`` for each object and record each change in the admin log; report successes and each
    refusal (its message) to the user."""
    done = 0
    for obj in queryset:
        before = _state(obj)
        try:
            service(obj)
            done += 1
        except services.LicensingError as error:
            modeladmin.message_user(request, f"{obj}: {error}", messages.ERROR)
            continue
        obj.refresh_from_db()
        audit_admin_action(request, obj, f"{action}: {before} → {_state(obj)}.")
    if done:
        modeladmin.message_user(request, f"{done} {verb}.", messages.SUCCESS)


# --- customers ----------------------------------------------------------------------------------------------------


class LicenseInline(admin.TabularInline):
    model = License
    fields = ["tier", "status", "is_trial", "starts_at", "expires_at", "monthly_build_quota", "max_registries"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-created_at"]

    def has_add_permission(self, request, obj=None):
        return False  # licenses are issued (with a key) from the license admin


class RegistryCredentialInline(admin.TabularInline):
    model = RegistryCredential
    fields = ["registry_type", "registry_url", "username", "status", "expires_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["name", "contact_name", "contact_email", "usable_license", "created_at", "is_deleted"]
    list_filter = [("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "contact_name", "contact_email"]
    date_hierarchy = "created_at"
    fields = ["name", "contact_name", "contact_email", "parent", "publishes_to_shared_cache", "metadata", "deleted_at"]
    raw_id_fields = ["parent"]

    def get_fields(self, request, obj=None):
        return [*self.fields, "history"] if obj else self.fields

    def get_readonly_fields(self, request, obj=None):
        return ["history"] if obj else []

    @admin.display(description="audit trail")
    def history(self, obj):
        return audit_trail(obj)

    inlines = [LicenseInline, RegistryCredentialInline]

    def get_queryset(self, request):
        return selectors.customers_with_usable_license_tier(super().get_queryset(request))

    def save_model(self, request, obj, form, change):
        services.customer_save(customer=obj)

    @admin.display(description="usable license", ordering="usable_license_tier")
    def usable_license(self, obj):
        return getattr(obj, "usable_license_tier", None) or "none"

    def get_inlines(self, request, obj):
        # A new customer has neither yet (and its id is a database default until it is saved).
        return self.inlines if obj else []

    @admin.display(boolean=True, description="deleted", ordering="deleted_at")
    def is_deleted(self, obj):
        return obj.deleted_at is not None


# --- licenses -----------------------------------------------------------------------------------------------------


class ExpiringSoonFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiring"

    def lookups(self, request, model_admin):
        return [("7", "within 7 days"), ("30", "within 30 days"), ("lapsed", "past expiry, still active")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() in ("7", "30"):
            usable = selectors.licenses_expiring(within=dt.timedelta(days=int(self.value())))
            return queryset.filter(pk__in=usable.values("pk"))
        if self.value() == "lapsed":
            return queryset.filter(status=License.Status.ACTIVE, expires_at__lte=now)
        return queryset


class LicenseIssueForm(forms.ModelForm):
    """Issue a license: the key is generated by the service and shown once."""

    class Meta:
        model = License
        fields = [
            "customer",
            "tier",
            "is_trial",
            "expires_at",
            "monthly_build_quota_override",
            "max_concurrent_builds_override",
            "max_registries_override",
            "feature_overrides",
            "notes",
        ]

    def clean(self):
        cleaned = super().clean()
        customer, expires_at = cleaned.get("customer"), cleaned.get("expires_at")
        if customer and selectors.license_usable_for_customer(customer=customer):
            raise forms.ValidationError(services.ALREADY_LICENSED)
        if expires_at and expires_at <= timezone.now():
            self.add_error("expires_at", services.EXPIRES_IN_PAST)
        return cleaned


class LicenseChangeForm(forms.ModelForm):
    class Meta:
        model = License
        fields = [
            "tier",
            "monthly_build_quota_override",
            "max_concurrent_builds_override",
            "max_registries_override",
            "feature_overrides",
            "notes",
        ]

    def clean(self):
        cleaned = super().clean()
        tier = cleaned.get("tier")
        if tier and ({"tier", "max_registries_override"} & set(self.changed_data)):
            problem = services.license_tier_change_problem(
                license=License.objects.get(pk=self.instance.pk),
                tier=tier,
                max_registries_override=cleaned.get("max_registries_override"),
            )
            if problem:
                raise forms.ValidationError(problem)
        return cleaned


@admin.register(License)
class LicenseAdmin(AddChangeFormsMixin, NoDeleteMixin, admin.ModelAdmin):
    add_form, change_form, readonly_lead = LicenseIssueForm, LicenseChangeForm, 5
    list_display = [
        "customer",
        "tier",
        "status_badge",
        "is_trial",
        "registries",
        "expires_at",
    ]
    list_filter = ["tier", "status", "is_trial", ExpiringSoonFilter]
    list_select_related = ["customer"]
    search_fields = ["customer__name", "id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    actions = ["suspend", "reinstate", "revoke", "renew"]
    readonly_fields = [
        "customer",
        "status_badge",
        "is_trial",
        "starts_at",
        "expires_at",
        "suspended_at",
        "revoked_at",
        "monthly_build_quota",
        "max_concurrent_builds",
        "max_registries",
        "features",
        "created_at",
        "updated_at",
        "history",
    ]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return _badge(obj.status)

    @admin.display(description="registries", ordering="max_registries")
    def registries(self, obj):
        return "unlimited" if obj.max_registries is None else obj.max_registries

    @admin.display(description="audit trail")
    def history(self, obj):
        return audit_trail(obj)

    def save_model(self, request, obj, form, change):
        if not change:
            issued = services.license_issue(
                customer=obj.customer,
                tier=obj.tier,
                is_trial=obj.is_trial,
                expires_at=obj.expires_at,
                monthly_build_quota=obj.monthly_build_quota_override,
                max_concurrent_builds=obj.max_concurrent_builds_override,
                max_registries=obj.max_registries_override,
                feature_overrides=obj.feature_overrides,
                notes=obj.notes,
            )
            obj.pk = issued.license.pk
            obj.refresh_from_db()
            request._issued_license_key = issued.key  # for response_add only; never stored
            return
        license = License.objects.get(pk=obj.pk)
        override_fields = {
            "monthly_build_quota_override",
            "max_concurrent_builds_override",
            "max_registries_override",
            "feature_overrides",
        }
        if override_fields & set(form.changed_data):
            services.license_set_overrides(
                license=license,
                monthly_build_quota=obj.monthly_build_quota_override,
                max_concurrent_builds=obj.max_concurrent_builds_override,
                max_registries=obj.max_registries_override,
                feature_overrides=obj.feature_overrides,
            )
        if "tier" in form.changed_data:
            services.license_change_tier(license=license, tier=obj.tier)
        if "notes" in form.changed_data:
            services.license_set_notes(license=license, notes=obj.notes)
        obj.refresh_from_db()

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "_issued_license_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "License issued",
            "license": obj,
            "license_key": key,
            "opts": self.opts,
            "change_url": f"../{obj.pk}/change/",
        }
        response = TemplateResponse(request, "admin/licensing/license/key_issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Suspend selected active licenses", permissions=["change"])
    def suspend(self, request, queryset):
        active = queryset.filter(status="active")
        _run(self, request, active, lambda o: services.license_suspend(license=o), "suspended", "Suspend")

    @admin.action(description="Reinstate selected suspended licenses", permissions=["change"])
    def reinstate(self, request, queryset):
        _run(
            self,
            request,
            queryset.filter(status="suspended"),
            lambda o: services.license_reinstate(license=o),
            "reinstated",
            "Reinstate",
        )

    @admin.action(description="Revoke selected licenses", permissions=["change"])
    def revoke(self, request, queryset):
        live = queryset.exclude(status="revoked")
        _run(self, request, live, lambda o: services.license_revoke(license=o), "revoked", "Revoke")

    @admin.action(description="Renew selected licenses for a year", permissions=["change"])
    def renew(self, request, queryset):
        def renew_one(license):
            base = max(license.expires_at or timezone.now(), timezone.now())
            services.license_renew(license=license, expires_at=base + RENEWAL_PERIOD)

        _run(self, request, queryset.filter(Q(status="active") | Q(status="expired")), renew_one, "renewed", "Renew")


# --- registry credentials -----------------------------------------------------------------------------------------


class SecretInput(forms.PasswordInput):
    """A password field that is never filled back, whatever the form holds."""

    def __init__(self, attrs=None):
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False)


class CredentialAddForm(forms.ModelForm):
    secret = forms.CharField(widget=SecretInput, strip=False, help_text="Write-only: it is never shown again.")

    class Meta:
        model = RegistryCredential
        fields = ["customer", "registry_type", "registry_url", "username", "secret", "expires_at"]

    def clean_secret(self):
        secret = self.cleaned_data["secret"]
        if not secret.strip():
            raise forms.ValidationError(services.EMPTY_SECRET)
        return secret

    def clean(self):
        cleaned = super().clean()
        customer = cleaned.get("customer")
        if customer:
            problem = services.credential_limit_problem(customer=customer)
            if problem:
                raise forms.ValidationError(problem)
        expires_at = cleaned.get("expires_at")
        if expires_at and expires_at <= timezone.now():
            self.add_error("expires_at", services.EXPIRES_IN_PAST)
        return cleaned


class CredentialChangeForm(forms.ModelForm):
    new_secret = forms.CharField(
        widget=SecretInput,
        required=False,
        strip=False,
        help_text="Write-only. Leave empty to keep the current secret, which is never shown.",
    )

    class Meta:
        model = RegistryCredential
        fields = ["registry_url", "username", "new_secret"]


@admin.register(RegistryCredential)
@method_decorator(sensitive_post_parameters("secret", "new_secret"), name="changeform_view")
class RegistryCredentialAdmin(AddChangeFormsMixin, NoDeleteMixin, admin.ModelAdmin):
    add_form, change_form, readonly_lead = CredentialAddForm, CredentialChangeForm, 2
    list_display = ["__str__", "customer", "registry_type", "status_badge", "expires_at", "last_used_at"]
    list_filter = ["registry_type", "status"]
    list_select_related = ["customer"]
    search_fields = ["customer__name", "registry_url", "username"]
    actions = ["revoke"]
    readonly_fields = [
        "customer",
        "registry_type",
        "status_badge",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "history",
    ]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return _badge(obj.status)

    @admin.display(description="audit trail")
    def history(self, obj):
        return audit_trail(obj)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # Write-only: a viewer (e.g. an operator) has nothing to set, and nothing to read ("New secret: None").
            fields = [field for field in fields if field != "new_secret"]
        return fields

    def save_model(self, request, obj, form, change):
        if not change:
            credential = services.credential_add(
                customer=obj.customer,
                registry_type=obj.registry_type,
                registry_url=obj.registry_url,
                username=obj.username,
                secret=form.cleaned_data["secret"],
                expires_at=obj.expires_at,
            )
            obj.pk = credential.pk
            obj.refresh_from_db()
            return
        if {"registry_url", "username"} & set(form.changed_data):
            services.credential_update(credential=obj, registry_url=obj.registry_url, username=obj.username)
        if form.cleaned_data.get("new_secret"):
            services.credential_rotate_secret(credential=obj, secret=form.cleaned_data["new_secret"])
        obj.refresh_from_db()

    @admin.action(description="Revoke selected credentials", permissions=["change"])
    def revoke(self, request, queryset):
        _run(
            self,
            request,
            queryset.exclude(status="revoked"),
            lambda o: services.credential_revoke(credential=o),
            "revoked",
            "Revoke",
        )
