"""The two roles of the admin, as groups whose permissions follow a rule rather than a hand-kept list.

- ``operators``: view every model of the domain apps and the audit trail, and the queue actions (cancel, retry,
  change priority, pause and resume claiming). No add, change or delete anywhere, so no license change form, and
  no permission that names a secret (secrets are write-only everywhere; this also keeps a future "reveal secret"
  permission away).
- ``admins``: every permission.

The console's migration creates both; ``sync_roles_after_migrate`` re-applies the rule after every ``migrate``,
so models added later (by any app) are covered. The rule is the contract: permissions granted to ``operators``
by hand are taken away again by the next ``migrate``.
"""

from django.db.models import Q

OPERATORS = "operators"
ADMINS = "admins"

# Apps whose data operators watch. ``admin`` is the audit trail (Django's admin log).
OBSERVED_APPS = ("honua", "licensing", "builds", "intake", "operations", "console", "admin")
QUEUE_ACTIONS = ("cancel_build", "retry_build", "reprioritize_build", "pause_claims")
SECRET_WORDS = ("secret", "reveal", "decrypt", "plaintext")


def operator_permissions_q() -> Q:
    """The ``auth.Permission`` rows of the operators' role."""
    views = Q(content_type__app_label__in=OBSERVED_APPS, codename__startswith="view_")
    actions = Q(content_type__app_label="builds", codename__in=QUEUE_ACTIONS)
    secrets = Q()
    for word in SECRET_WORDS:
        secrets |= Q(codename__icontains=word)
    return (views | actions) & ~secrets


def sync_roles(*, group_model, permission_model) -> None:
    """Create both groups if missing and set their permissions to the rule (idempotent).

    Takes the models so that a migration can pass its historical ones.
    """
    operators, _ = group_model.objects.get_or_create(name=OPERATORS)
    operators.permissions.set(permission_model.objects.filter(operator_permissions_q()))
    admins, _ = group_model.objects.get_or_create(name=ADMINS)
    admins.permissions.set(permission_model.objects.all())


def sync_roles_after_migrate(sender, *, apps=None, **kwargs) -> None:
    """post_migrate receiver: keep the roles current once every app's permissions exist."""
    if apps is None:  # flush (e.g. between transactional tests) sends no migration state
        from django.apps import apps
    try:
        group_model = apps.get_model("auth", "Group")
        permission_model = apps.get_model("auth", "Permission")
    except LookupError:  # auth not migrated (e.g. migrate of a single app to zero)
        return
    sync_roles(group_model=group_model, permission_model=permission_model)
