from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    """The operator console: the admin's dashboard, live refresh, and the operator/admin roles.

    It sits above every other app (last in ``INSTALLED_APPS``) and may import them; none imports it.
    """

    name = "console"
    verbose_name = "Operator console"
    default = True

    def ready(self):
        from console import roles

        # Console is the last app, so by its post_migrate every model's permission exists: keep the roles current
        # as apps add models after the migration that created the groups.
        post_migrate.connect(roles.sync_roles_after_migrate, sender=self, dispatch_uid="console.sync_roles")
