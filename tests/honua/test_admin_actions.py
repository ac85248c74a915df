"""Every admin action declares its permissions, operators run only the queue actions, and every data-changing
action writes one admin log entry per object it changed (through ``honua.admin_utils.audit_admin_action``)."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.sites import all_sites
from django.urls import reverse
from django.utils import timezone

from builds.models import Build, BuildCacheEntry, ClaimPause
from builds.queue import services as build_services
from intake import services as intake_services
from intake.models import BuildManifest, Conversation, ConversationMessage, ModelPrice, RequirementExtraction
from licensing.models import License, RegistryCredential
from tests.builds.cache_factories import cached
from tests.console.conftest import make_user
from tests.console.factories import BuildFactory
from tests.intake.factories import BuildManifestFactory, ConversationFactory, ExtractionFactory
from tests.licensing.factories import LicenseFactory, RegistryCredentialFactory

# What the README says operators may do through admin actions: cancel, retry and reprioritise builds, and pause
# and resume claiming for customers and licenses.
OPERATOR_ACTIONS = {
    ("builds", "build", "cancel_builds"),
    ("builds", "build", "retry_builds"),
    ("builds", "build", "change_priority"),
    ("licensing", "customer", "pause_customer_claims"),
    ("licensing", "customer", "resume_customer_claims"),
    ("licensing", "license", "pause_license_claims"),
    ("licensing", "license", "resume_license_claims"),
}


def _registered_actions():
    """(site, model admin, action function, action name) for every action of every registered ModelAdmin."""
    for site in all_sites:
        for model, model_admin in site._registry.items():
            for func, name, _description in model_admin._get_base_actions():
                yield site, model, model_admin, func, name


def test_every_admin_action_declares_permissions():
    """No admin action is offered to whoever may view the list: each names permissions, each backed by a
    has_<perm>_permission method on its ModelAdmin."""
    missing, unbacked = [], []
    for site, model, model_admin, func, name in _registered_actions():
        perms = getattr(func, "allowed_permissions", None)
        where = f"{site.name}:{model._meta.label}.{name}"
        if not perms:
            missing.append(where)
            continue
        unbacked += [f"{where}:{perm}" for perm in perms if not hasattr(model_admin, f"has_{perm}_permission")]
    assert not missing, f"actions without permissions=: {missing}"
    assert not unbacked, f"permissions without has_<perm>_permission: {unbacked}"


def _licenses(n, **fields):
    return [LicenseFactory(**fields) for _ in range(n)]


def _submittable(n):
    out = []
    for _ in range(n):
        license = LicenseFactory(starts_at=timezone.now() - dt.timedelta(days=1))
        manifest = BuildManifestFactory(conversation=ConversationFactory(customer=license.customer))
        BuildManifest.objects.filter(pk=manifest.pk).update(
            status=BuildManifest.Status.APPROVED, approved_at=timezone.now()
        )
        out.append(manifest)
    return out


def _prices_of_unpriced_models(n):
    """n prices, each for a model whose usage was recorded before any price covered it."""
    out = []
    for i in range(n):
        model = f"matrix-model-{i}-{timezone.now().timestamp()}"
        conversation = intake_services.conversation_start(customer=LicenseFactory().customer, model=model, title="t")
        intake_services.message_add(conversation=conversation, role="assistant", content="a", prompt_tokens=1000)
        out.append(
            ModelPrice.objects.create(
                match_pattern=f"^{model}$",
                input_price=1,
                output_price=1,
                valid_from=timezone.now() - dt.timedelta(days=1),
                source="test",
            )
        )
    return out


def _generatable(n):
    out = []
    for _ in range(n):
        conversation = ConversationFactory()
        ExtractionFactory(conversation=conversation, requirement_type="base_image", value="python:3.12-slim")
        ExtractionFactory(conversation=conversation, requirement_type="package", value="gdal")
        out.append(conversation)
    return out


def _paused(scope, objects):
    for obj in objects:
        build_services.claims_pause(scope=scope, target=obj)
    return objects


def _is_paused(scope, obj):
    return ClaimPause.objects.filter(scope=scope, target_id=obj.pk).exists()


@dataclass
class Case:
    app: str
    model_name: str
    action: str
    make: Any  # n -> objects the action applies to
    changed: Any  # object (fresh from the database) -> whether the action changed it
    extra: dict = field(default_factory=dict)


CASES = [
    Case(
        "builds",
        "build",
        "cancel_builds",
        lambda n: [BuildFactory() for _ in range(n)],
        lambda b: b.status == "cancelled",
    ),
    Case(
        "builds",
        "build",
        "retry_builds",
        lambda n: [BuildFactory(status=Build.Status.FAILED) for _ in range(n)],
        lambda b: b.status == "queued",
    ),
    Case(
        "builds",
        "build",
        "change_priority",
        lambda n: [BuildFactory(priority=3) for _ in range(n)],
        lambda b: b.priority == 9,
        {"priority": "9"},
    ),
    Case(
        "builds", "buildcacheentry", "evict", lambda n: [cached() for _ in range(n)], lambda e: e.deleted_at is not None
    ),
    Case(
        "licensing",
        "customer",
        "pause_customer_claims",
        lambda n: [LicenseFactory().customer for _ in range(n)],
        lambda c: _is_paused("customer", c),
    ),
    Case(
        "licensing",
        "customer",
        "resume_customer_claims",
        lambda n: _paused("customer", [LicenseFactory().customer for _ in range(n)]),
        lambda c: not _is_paused("customer", c),
    ),
    Case(
        "licensing",
        "license",
        "pause_license_claims",
        lambda n: _licenses(n),
        lambda x: _is_paused("license", x),
    ),
    Case(
        "licensing",
        "license",
        "resume_license_claims",
        lambda n: _paused("license", _licenses(n)),
        lambda x: not _is_paused("license", x),
    ),
    Case("licensing", "license", "suspend", lambda n: _licenses(n), lambda x: x.status == "suspended"),
    Case(
        "licensing",
        "license",
        "reinstate",
        lambda n: _licenses(n, status=License.Status.SUSPENDED),
        lambda x: x.status == "active",
    ),
    Case("licensing", "license", "revoke", lambda n: _licenses(n), lambda x: x.status == "revoked"),
    Case(
        "licensing",
        "license",
        "renew",
        lambda n: _licenses(n, expires_at=timezone.now() + dt.timedelta(days=10)),
        lambda x: x.expires_at > timezone.now() + dt.timedelta(days=300),
    ),
    Case(
        "licensing",
        "registrycredential",
        "revoke",
        lambda n: [RegistryCredentialFactory() for _ in range(n)],
        lambda c: c.status == "revoked",
    ),
    Case(
        "intake",
        "conversation",
        "generate_manifest",
        _generatable,
        lambda c: BuildManifest.objects.filter(conversation=c).exists(),
    ),
    Case(
        "intake",
        "conversation",
        "mark_abandoned",
        lambda n: [ConversationFactory() for _ in range(n)],
        lambda c: c.status == Conversation.Status.ABANDONED,
    ),
    Case(
        "intake",
        "buildmanifest",
        "approve",
        lambda n: [BuildManifestFactory() for _ in range(n)],
        lambda m: m.status == "approved",
    ),
    Case("intake", "buildmanifest", "submit", _submittable, lambda m: m.status == "submitted" and m.build_id),
    Case(
        "intake",
        "requirementextraction",
        "mark_correct",
        lambda n: [ExtractionFactory() for _ in range(n)],
        lambda x: x.verification == RequirementExtraction.Verification.CORRECT,
    ),
    Case(
        "intake",
        "requirementextraction",
        "mark_incorrect",
        lambda n: [ExtractionFactory() for _ in range(n)],
        lambda x: x.verification == RequirementExtraction.Verification.INCORRECT,
    ),
    Case(
        "intake",
        "modelprice",
        "price_unpriced_messages",
        _prices_of_unpriced_models,
        lambda p: not ConversationMessage.objects.filter(unpriced=True, model__regex=p.match_pattern).exists(),
    ),
]
CASE_IDS = [f"{c.app}.{c.model_name}.{c.action}" for c in CASES]


def test_the_matrix_covers_every_data_changing_action():
    """Every registered action but Django's own delete_selected (which logs its deletions itself) is in the
    matrix below, so a new action cannot skip the permission and audit checks."""
    registered = {
        (model._meta.app_label, model._meta.model_name, name)
        for _site, model, _admin, _func, name in _registered_actions()
        if name != "delete_selected"
    }
    assert registered == {(c.app, c.model_name, c.action) for c in CASES}


def _post(client, case, objects):
    url = reverse(f"admin:{case.app}_{case.model_name}_changelist")
    return client.post(url, {"action": case.action, "_selected_action": [str(o.pk) for o in objects], **case.extra})


def _snapshot(objects):
    model = type(objects[0])
    return list(model._base_manager.filter(pk__in=[o.pk for o in objects]).order_by("pk").values())


def _counts():
    return {
        m: m._base_manager.count()
        for m in (Build, BuildManifest, BuildCacheEntry, RegistryCredential, License, ClaimPause)
    }


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_operator_runs_only_the_queue_actions(client, case):
    """An operator is refused every action the README does not list as theirs (not offered, nothing changed, no
    log entry), and runs the listed ones."""
    operator = make_user("olive-operator", group="operators")
    client.force_login(operator)
    objects = case.make(2)
    before, counts = _snapshot(objects), _counts()
    response = _post(client, case, objects)
    assert response.status_code in (200, 302, 403)
    if (case.app, case.model_name, case.action) in OPERATOR_ACTIONS:
        assert all(case.changed(type(o)._base_manager.get(pk=o.pk)) for o in objects)
        assert LogEntry.objects.filter(user=operator).count() == 2
    else:
        assert _snapshot(objects) == before
        assert _counts() == counts
        assert not LogEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_admin_runs_every_action_and_each_changed_object_is_audited_once(client, case):
    """A member of admins runs every action; it changes each selected object and writes exactly one admin log
    entry per object: the user, the object (type, id, name) and the change in words."""
    admin_user = make_user("ada-admin", group="admins")
    client.force_login(admin_user)
    objects = case.make(2)
    response = _post(client, case, objects)
    assert response.status_code == 302
    for obj in objects:
        fresh = type(obj)._base_manager.get(pk=obj.pk)
        assert case.changed(fresh), f"{case.action} did not change {obj.pk}"
        entries = LogEntry.objects.filter(object_id=str(obj.pk), content_type__model=case.model_name)
        assert entries.count() == 1, f"{case.action}: {entries.count()} log entries for {obj.pk}"
        entry = entries.get()
        assert (entry.user_id, entry.action_flag) == (admin_user.pk, CHANGE)
        assert entry.change_message and entry.object_repr
    assert LogEntry.objects.count() == 2


def test_admin_site_is_the_only_site():
    """The matrix drives admin.site: every registered ModelAdmin lives there (a second site needs its own
    matrix)."""
    assert {site.name for site in all_sites if site._registry} == {admin.site.name}
