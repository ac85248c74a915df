"""A web project's settings, as docs/web-layer.md describes them (copied outside the repository by the test)."""

import os

SECRET_KEY = os.environ["SECRET_KEY"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "honua",  # first: its `migrate` keeps the migration ledger (schema_migrations)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.postgres",
    "pgtrigger",
    "pghistory",
    "licensing",
    "builds",
    "intake",
    "operations",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["PGDATABASE"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ.get("PGPORT", ""),
    }
}

# Secrets at rest (honua/crypto.py): the project's key ring and blind-index key (32 random bytes, base64).
HONUA_ENCRYPTION_KEYS = os.environ["HONUA_ENCRYPTION_KEYS"]
HONUA_BLIND_INDEX_KEY = os.environ["HONUA_BLIND_INDEX_KEY"]
