"""A throwaway database on the configured server, for commands that need a freshly migrated (or empty) one."""

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from psycopg import sql


def database_url(settings_dict: dict, database: str | None = None) -> str:
    """A ``DATABASE_URL`` (also a libpq URI) for ``database`` on the server of a Django connection's settings."""
    host = settings_dict["HOST"] or ""
    netloc_host = quote(host, safe="") if host.startswith("/") else host
    port = f":{settings_dict['PORT']}" if settings_dict["PORT"] else ""
    password = f":{quote(settings_dict['PASSWORD'])}" if settings_dict.get("PASSWORD") else ""
    return f"postgres://{settings_dict['USER']}{password}@{netloc_host}{port}/{database or settings_dict['NAME']}"


def _execute_without_database(statement: sql.Composable) -> None:
    with connection._nodb_cursor() as cursor:
        cursor.execute(statement.as_string(cursor.connection))


@contextlib.contextmanager
def scratch_database(purpose: str, *, keep: bool = False) -> Iterator[str]:
    """Create an empty database beside the configured one, yield its URL, and drop it afterwards (unless
    ``keep``)."""
    connection.ensure_connection()  # the embedded server fills in its socket folder on connecting
    name = f"{connection.settings_dict['NAME']}_{purpose}_{uuid.uuid4().hex[:8]}"[:63]
    _execute_without_database(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(connection.settings_dict, name)
    finally:
        if not keep:
            _execute_without_database(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_manage(url: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``manage.py`` against the database at ``url`` (its own process, so it is that process's default)."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["DATABASE_URL"] = url
    env.setdefault("DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "honua.settings.development"))
    return subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
