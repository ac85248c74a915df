"""The admin app, with the console's site as the default ``admin.site`` (Django's documented way to override
the default admin site). ``INSTALLED_APPS`` lists ``console.admin_apps.ConsoleAdminConfig`` in place of
``django.contrib.admin``; every app keeps registering on ``django.contrib.admin.site``."""

from django.contrib.admin.apps import AdminConfig, SimpleAdminConfig

from honua import registry


class ConsoleAdminConfig(AdminConfig):
    default_site = "console.sites.ConsoleAdminSite"

    def ready(self) -> None:
        # Django's autodiscovery, extended to the sub-packages an app lists (builds/queue/admin.py,
        # builds/cache/admin.py), still in INSTALLED_APPS order: console/admin.py, last, sees every model registered.
        SimpleAdminConfig.ready(self)
        registry.autodiscover("admin")
