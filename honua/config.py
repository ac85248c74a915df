"""Reading configuration from the environment, with errors a person can act on."""

import os

from django.core.exceptions import ImproperlyConfigured

# Development-only keys (derived from public strings, so worthless as secrets). The production settings
# refuse to start with them.
DEVELOPMENT_ENCRYPTION_KEYS = "1:a2v63A4FQugPp0mNDWHVheGYtyuhRtHLyRlnAh+VlsE="
DEVELOPMENT_BLIND_INDEX_KEY = "JC4mtrQprghdz7q/uNITjVZi8q0hHLEeYsyW9cre85o="

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    """The variable's value, or ``default`` when it is unset."""
    return os.environ.get(name, default)


def env_required(name: str) -> str:
    """The variable's value; a clear error when it is unset or empty."""
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(f"{name} must be set in the environment")
    return value


def env_bool(name: str, default: bool) -> bool:
    """A boolean variable (1/0, true/false, yes/no, on/off)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    """An integer variable."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list variable."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]
