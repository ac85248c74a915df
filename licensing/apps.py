from django.apps import AppConfig
from django.core import checks


class LicensingConfig(AppConfig):
    name = "licensing"
    verbose_name = "Licensing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from honua import crypto

        # Licensing stores encrypted secrets: a malformed key ring fails `check` (and so migrate, runserver).
        checks.register(crypto.system_check, checks.Tags.security)
