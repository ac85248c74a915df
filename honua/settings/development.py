"""Development settings: work with no environment variables at all."""

from honua.config import env_bool, env_str

from .base import *  # noqa: F403

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", "django-insecure-honua-development-key-do-not-use-in-production")

# Fixed development keys; the production settings refuse to start with them.
from honua.config import DEVELOPMENT_BLIND_INDEX_KEY, DEVELOPMENT_ENCRYPTION_KEYS  # noqa: E402

HONUA_ENCRYPTION_KEYS = HONUA_ENCRYPTION_KEYS or DEVELOPMENT_ENCRYPTION_KEYS  # noqa: F405
HONUA_BLIND_INDEX_KEY = HONUA_BLIND_INDEX_KEY or DEVELOPMENT_BLIND_INDEX_KEY  # noqa: F405
