"""The admin app, with the console's site as the default ``admin.site`` (Django's documented way to override
the default admin site). ``INSTALLED_APPS`` lists ``console.admin_apps.ConsoleAdminConfig`` in place of
``django.contrib.admin``; every app keeps registering on ``django.contrib.admin.site``."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "console.sites.ConsoleAdminSite"
