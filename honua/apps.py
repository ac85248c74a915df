from django.apps import AppConfig


class HonuaConfig(AppConfig):
    name = "honua"
    verbose_name = "Honua"
    default_auto_field = "django.db.models.BigAutoField"
