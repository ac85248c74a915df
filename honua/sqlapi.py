"""The base of the typed SQL-API clients (``builds.queue.client``, ``builds.cache.client``).

A client wraps one DB-API connection: Django's ``connection`` (the default: services, demo loaders, maintenance)
or a raw psycopg connection (a worker that pipelines several calls). Each SQL function the Python side calls is
one method of one client, so the SQL text of a call is written once; a method that a caller may need to send in a
pipeline also has a ``*_sql`` function returning its :data:`Statement`. Errors the SQL API raises on purpose become
:mod:`honua.errors` exceptions, chosen by SQLSTATE in :func:`honua.errors.from_database_error` (the one place that
translates); anything else (a lost connection, a bug) propagates unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from django.db import DatabaseError, transaction
from django.db import connection as django_connection

from honua import errors

# The SQL text of one call and its parameters.
Statement = tuple[str, list[Any]]


class SqlApiClient:
    """Runs statements over a connection; subclasses add one typed method per SQL function."""

    # SQLSTATE -> exception for this domain, consulted before honua.errors.BY_SQLSTATE; a call may pass its own
    # ``overrides`` instead.
    overrides: Mapping[str, type[errors.HonuaError]] = {}

    def __init__(self, connection: Any = None, *, savepoint: bool = True, translate: bool = True):
        """``connection``: None for Django's, or a psycopg connection. ``savepoint``: run each call in its own
        savepoint (a refused call leaves the caller's transaction usable); a caller on an autocommit connection
        that wants one round trip per call passes False. ``translate``: False leaves database errors as they are
        (a caller with its own handling of lost connections and refusals, the reference worker's hot path)."""
        self.connection = connection
        self.savepoint = savepoint
        self.translate = translate

    @contextlib.contextmanager
    def _translated(self, overrides: Mapping[str, type[errors.HonuaError]] | None = None) -> Iterator[None]:
        try:
            if not self.savepoint:
                yield
            elif self.connection is None:
                with transaction.atomic():
                    yield
            else:
                with self.connection.transaction():
                    yield
        except (DatabaseError, psycopg.Error) as exc:
            if not self.translate:
                raise
            translated = errors.from_database_error(exc, self.overrides if overrides is None else overrides)
            if translated is None:
                raise
            raise translated from exc

    def _cursor(self) -> Any:
        return (self.connection if self.connection is not None else django_connection).cursor()

    def rows(self, statement: Statement, **kw: Any) -> list[tuple[Any, ...]]:
        """Every row the statement returns."""
        sql, params = statement
        with self._translated(kw.get("overrides")), self._cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def row(self, statement: Statement, **kw: Any) -> tuple[Any, ...] | None:
        """The first row the statement returns, or None."""
        sql, params = statement
        with self._translated(kw.get("overrides")), self._cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def dicts(self, statement: Statement, **kw: Any) -> list[dict[str, Any]]:
        """Every row the statement returns, as a dict keyed by column name (a view's rows)."""
        sql, params = statement
        with self._translated(kw.get("overrides")), self._cursor() as cursor:
            cursor.execute(sql, params)
            columns = [column.name for column in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def value(self, statement: Statement, **kw: Any) -> Any:
        """The first column of the first row (a scalar function's result)."""
        row = self.row(statement, **kw)
        return None if row is None else row[0]

    def models(self, model: Any, statement: Statement, **kw: Any) -> list[Any]:
        """The rows as instances of a Django ``model`` (a function returning its table's row type); Django's
        connection only."""
        sql, params = statement
        with self._translated(kw.get("overrides")):
            return list(model.objects.raw(sql, params))
