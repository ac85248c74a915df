from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class IntakeConfig(AppConfig):
    name = "intake"
    verbose_name = "AI intake"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(check_deprecated_prices_setting)


def check_deprecated_prices_setting(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """HONUA_MODEL_PRICES (a dict in settings) gave way to the model_prices table; a deployment still defining it
    is told so rather than having its prices silently ignored."""
    if getattr(settings, "HONUA_MODEL_PRICES", None) is None:
        return []
    return [
        checks.Warning(
            "HONUA_MODEL_PRICES is deprecated and ignored: message costs use the model_prices table.",
            hint="Add each price in the admin (AI intake > Model prices) with its validity and source, "
            "then remove HONUA_MODEL_PRICES from the settings.",
            id="intake.W001",
        )
    ]
