"""The entry point behind ``manage.py``: configuration and connection errors become one clear line."""

import sys

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError

from honua.embedded_pg import EmbeddedServerError


def describe_database_error(exc: Exception) -> str:
    message = " ".join(str(exc).split())  # psycopg's messages span lines
    if "connection failed" in message or "connection to server" in message or "could not connect" in message:
        message = message.removeprefix("connection failed: ")
        message = message.split(" Is the server running")[0]
        return f"cannot connect to the database: {message}"
    return f"database error: {message}"


def run(argv: list[str]) -> int:
    from django.conf import settings
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  (load the settings now, so their errors are reported here)
        execute_from_command_line(argv)
    except ImproperlyConfigured as exc:
        print(f"honua: configuration error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(f"honua: {describe_database_error(exc)}", file=sys.stderr)
        return 1
    except EmbeddedServerError as exc:
        print(f"honua: {exc}", file=sys.stderr)
        return 1
    return 0
