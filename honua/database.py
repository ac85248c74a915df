"""The ``DATABASES['default']`` entry: an external server from ``DATABASE_URL``, or the embedded one."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

EMBEDDED_ENGINE = "honua.db.embedded"
EMBEDDED_DATABASE_NAME = "honua"
MALFORMED_URL = "DATABASE_URL is malformed; expected postgres://USER:PASSWORD@HOST:PORT/NAME"
NOT_POSTGRES = "DATABASE_URL must point at PostgreSQL (postgres:// or postgresql://)"
REPLICA_ALIAS = "replica"
# A replica that does not answer within this many seconds counts as down (the router then reads the primary).
REPLICA_CONNECT_TIMEOUT_SECONDS = 3


def embedded_data_dir(base_dir: Path) -> Path:
    """Where the embedded server keeps its data: ``HONUA_PGDATA`` or ``.honua/pgdata`` in the project."""
    return Path(os.environ.get("HONUA_PGDATA") or base_dir / ".honua" / "pgdata").resolve()


def database_settings(url: str, *, base_dir: Path, variable: str = "DATABASE_URL") -> dict:
    """Parse ``DATABASE_URL``; without one, describe the embedded PostgreSQL (started on first connection)."""
    if not url:
        return {
            "ENGINE": EMBEDDED_ENGINE,
            "NAME": EMBEDDED_DATABASE_NAME,
            "USER": "postgres",
            "HOST": "",
            "PORT": "",
            "PGDATA": str(embedded_data_dir(base_dir)),
        }
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        raise ImproperlyConfigured(MALFORMED_URL.replace("DATABASE_URL", variable)) from None
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(NOT_POSTGRES.replace("DATABASE_URL", variable))
    if not parts.path.strip("/") or not (parts.hostname or "host=" in parts.query):
        raise ImproperlyConfigured(MALFORMED_URL.replace("DATABASE_URL", variable))
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError:  # the message may quote the URL, password and all: say nothing of it
        raise ImproperlyConfigured(MALFORMED_URL.replace("DATABASE_URL", variable)) from None
    config["ENGINE"] = "django.db.backends.postgresql"
    return dict(config)


def database_aliases(url: str, replica_url: str, *, base_dir: Path) -> dict[str, dict]:
    """``DATABASES``: the primary as ``default``; with ``DATABASE_REPLICA_URL``, a streaming replica as ``replica``.

    The replica is read only through the router's opt-in scopes (``honua.routers.replica_reads``); it never
    migrates, and the test runner treats it as a mirror of ``default`` (no test database of its own)."""
    databases = {"default": database_settings(url, base_dir=base_dir)}
    if replica_url:
        replica = database_settings(replica_url, base_dir=base_dir, variable="DATABASE_REPLICA_URL")
        replica.setdefault("OPTIONS", {}).setdefault("connect_timeout", REPLICA_CONNECT_TIMEOUT_SECONDS)
        replica["TEST"] = {"MIRROR": "default"}
        databases[REPLICA_ALIAS] = replica
    return databases
