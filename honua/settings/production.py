"""Production settings: every secret comes from the environment, and development defaults are refused."""

from django.core.exceptions import ImproperlyConfigured

from honua.config import (
    DEVELOPMENT_BLIND_INDEX_KEY,
    DEVELOPMENT_ENCRYPTION_KEYS,
    env_bool,
    env_int,
    env_list,
    env_required,
)
from honua.crypto import parse_blind_index_key, parse_key_ring

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env_required("SECRET_KEY")
if SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured("SECRET_KEY must be a random value of at least 50 characters in production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the hosts this site serves in production")

HONUA_ENCRYPTION_KEYS = env_required("HONUA_ENCRYPTION_KEYS")
HONUA_BLIND_INDEX_KEY = env_required("HONUA_BLIND_INDEX_KEY")
if HONUA_ENCRYPTION_KEYS == DEVELOPMENT_ENCRYPTION_KEYS or HONUA_BLIND_INDEX_KEY == DEVELOPMENT_BLIND_INDEX_KEY:
    raise ImproperlyConfigured("the development encryption keys must not be used in production")
# Malformed keys stop the start with a message naming the problem (never the key).
parse_key_ring(HONUA_ENCRYPTION_KEYS)
parse_blind_index_key(HONUA_BLIND_INDEX_KEY)

# Pooled connections (psycopg_pool) for the web processes.
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = env_bool("DATABASE_POOL", True)  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405  (the pool reuses connections)
if "replica" in DATABASES:  # noqa: F405
    DATABASES["replica"]["OPTIONS"]["pool"] = env_bool("DATABASE_POOL", True)  # noqa: F405
    DATABASES["replica"]["CONN_MAX_AGE"] = 0  # noqa: F405

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
