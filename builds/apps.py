from django.apps import AppConfig


class BuildsConfig(AppConfig):
    name = "builds"
    verbose_name = "Builds"
    default_auto_field = "django.db.models.BigAutoField"
    # The app's two rooms. honua.registry.autodiscover (the demo loaders, the maintenance tasks and the admin) finds
    # their demo.py, maintenance.py and admin.py, in this order.
    subpackages = ("cache", "queue")
