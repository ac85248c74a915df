"""The admin site: Django's, plus the console's pages (dashboard, running builds, live JSON) and their links."""

from django.contrib import admin
from django.urls import path, reverse

from honua.routers import replica_view

# The ModelAdmin view whose GET only reads (the list of rows); the others (change forms, add, delete, history)
# read then write, or must show what was just written, and stay on the primary.
REPLICA_READ_VIEWS = {"changelist_view"}


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Honua operations"
    site_title = "Honua admin"
    index_title = "Operations"

    def admin_view(self, view, cacheable=False):
        """Every admin page: a changelist's GET reads from the replica when one is configured (honua/routers.py);
        any page's POST keeps the browser on the primary for a few seconds, so it sees what it saved."""
        reads = getattr(view, "__name__", "") in REPLICA_READ_VIEWS
        return super().admin_view(replica_view(view, reads=reads), cacheable)

    def get_urls(self):
        from console import views

        urls = [
            path("console/dashboard/", self.admin_view(views.dashboard), name="console_dashboard"),
            path("console/running/", self.admin_view(views.running_builds), name="console_running"),
            path("console/workers/", self.admin_view(views.workers), name="console_workers"),
            path("console/claims/", self.admin_view(views.global_claims), name="console_claims"),
            # Not wrapped in admin_view: a JSON client gets a 403 with no data rather than a login redirect.
            path("console/live.json", views.live, name="console_live"),
        ]
        return urls + super().get_urls()

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        if app_label in (None, "console") and request.user.is_active and request.user.is_staff:
            app_list.insert(0, self._console_entry())
        return app_list

    def _console_entry(self) -> dict:
        def page(name, url_name):
            url = reverse(f"{self.name}:{url_name}")
            return {
                "name": name,
                "object_name": name.replace(" ", ""),
                "admin_url": url,
                "add_url": None,
                "view_only": True,
                "perms": {"add": False, "change": False, "delete": False, "view": True},
            }

        return {
            "name": "Operator console",
            "app_label": "console",
            "app_url": reverse(f"{self.name}:console_dashboard"),
            "has_module_perms": True,
            "models": [
                page("Dashboard", "console_dashboard"),
                page("Running builds", "console_running"),
                page("Workers", "console_workers"),
            ],
        }
