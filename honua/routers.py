"""Reads from a streaming replica, where it is safe, and everything else on the primary.

The rule (docs/operations.md, "Read replica"): the router sends every read to the primary (``default``) unless the
code runs inside ``replica_reads()``: the admin's changelists (GET), the operator console's pages and its live
JSON. Inside such a scope, reads (the ORM through the router, raw SQL through ``read_connection()``) go to the
``replica`` alias, except

- inside an atomic block on the primary: a transaction may have written and must read its own writes;
- once anything has run on the primary inside the scope (a write, a service, a call of the SQL API): the scope is
  pinned to the primary for the rest of it, so it reads what it wrote;
- when the replica is down or, with ``HONUA_REPLICA_MAX_LAG_SECONDS``, further behind than that: the scope reads
  the primary, and one warning line says so (again at most every ``WARNING_INTERVAL_SECONDS`` while it lasts).

Writes always go to the primary, migrations run only there, and without ``DATABASE_REPLICA_URL`` there is one
alias and all of this does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import Error, connections

from honua.database import REPLICA_ALIAS

PRIMARY_ALIAS = "default"
# The cookie that keeps a browser on the primary for a few seconds after a request that may have written.
STICKY_COOKIE = "honua_read_primary"
WARNING_INTERVAL_SECONDS = 300
REPLICA_DOWN = "read replica unavailable ({where}: {reason}); reading from the primary"
REPLICA_BEHIND = "read replica {lag:.1f} s behind (limit {limit} s, {where}); reading from the primary"
REPLICA_BACK = "read replica available again ({where}); reading from it"

# Seconds since the last replayed transaction while WAL is still waiting to be replayed; 0 when it has caught up.
LAG_SQL = """
SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8
"""

logger = logging.getLogger("honua.replica")


@dataclasses.dataclass
class _Scope:
    alias: str
    pinned: bool = False


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("honua_replica_scope", default=None)


class _Health:
    """The replica's health as this process last saw it, shared by its threads (a lock guards it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_until = 0.0  # monotonic time before which the replica is not tried again
        self.down = False
        self.last_warning = float("-inf")

    def reset(self) -> None:
        with self.lock:
            self.down_until, self.down, self.last_warning = 0.0, False, float("-inf")


health = _Health()


def replica_configured() -> bool:
    return REPLICA_ALIAS in connections.settings


def _where() -> str:
    """The replica's host, port and database, for a log line: never its user or password."""
    params = connections.settings[REPLICA_ALIAS]
    host = params.get("HOST") or "local socket"
    port = f":{params['PORT']}" if params.get("PORT") else ""
    return f"{host}{port}/{params.get('NAME', '')}"


def _mark_down(message: str) -> None:
    now = time.monotonic()
    with health.lock:
        health.down_until = now + settings.HONUA_REPLICA_RETRY_SECONDS
        warn = not health.down or now - health.last_warning >= WARNING_INTERVAL_SECONDS
        health.down = True
        if warn:
            health.last_warning = now
    if warn:
        logger.warning(message)


def _mark_up() -> None:
    with health.lock:
        was_down, health.down = health.down, False
        health.down_until = 0.0
    if was_down:
        logger.warning(REPLICA_BACK.format(where=_where()))


def _replica_usable() -> bool:
    """Whether the replica answers (and, with a lag bound, is close enough behind); checked once per scope, and
    not at all for ``HONUA_REPLICA_RETRY_SECONDS`` after it was found down."""
    with health.lock:
        if health.down and time.monotonic() < health.down_until:
            return False
    replica = connections[REPLICA_ALIAS]
    try:
        with replica.cursor() as cursor:
            cursor.execute(LAG_SQL)
            (lag,) = cursor.fetchone()
    except Error as exc:
        with contextlib.suppress(Error):
            replica.close()
        _mark_down(REPLICA_DOWN.format(where=_where(), reason=_reason(exc)))
        return False
    limit = settings.HONUA_REPLICA_MAX_LAG_SECONDS
    if limit and lag > limit:
        _mark_down(REPLICA_BEHIND.format(lag=lag, limit=limit, where=_where()))
        return False
    _mark_up()
    return True


def _reason(exc: Exception) -> str:
    """A short reason for the log line; never the driver's message, which may quote connection parameters."""
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "timeout" in text or "timed out" in text:
        return "connection timed out"
    return type(exc).__name__


@contextlib.contextmanager
def replica_reads() -> Iterator[None]:
    """Within the block, reads may come from the replica (see the module's rule); nested scopes share the outer
    one. Without a replica configured, a no-op."""
    if _scope.get() is not None or not replica_configured():
        yield
        return
    scope = _Scope(alias=REPLICA_ALIAS if _replica_usable() else PRIMARY_ALIAS)
    token = _scope.set(scope)

    def pin(execute, sql, params, many, context):
        scope.pinned = True  # anything on the primary inside the scope: read your own writes from now on
        return execute(sql, params, many, context)

    try:
        with connections[PRIMARY_ALIAS].execute_wrapper(pin):
            yield
    finally:
        _scope.reset(token)


def read_alias() -> str:
    """The alias a read should use now: the replica only inside a healthy, unpinned scope outside a transaction."""
    scope = _scope.get()
    if scope is None or scope.pinned or scope.alias == PRIMARY_ALIAS:
        return PRIMARY_ALIAS
    if connections[PRIMARY_ALIAS].in_atomic_block:
        return PRIMARY_ALIAS
    return scope.alias


def read_connection():
    """The connection for a read-only raw query (selectors use it instead of ``django.db.connection``)."""
    return connections[read_alias()]


def replica_view(view: Callable, *, reads: bool = True) -> Callable:
    """Run a read-only view (GET or HEAD) in ``replica_reads()``, rendering its response inside the scope (a
    TemplateResponse evaluates its querysets when rendered). Other methods, and a browser that may have written
    within the last ``HONUA_REPLICA_STICKY_SECONDS``, read the primary; a request that may have written (any other
    method) sets that cookie. With ``reads=False`` only the cookie is set: for views that read then write."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            response = view(request, *args, **kwargs)
            if replica_configured() and settings.HONUA_REPLICA_STICKY_SECONDS > 0:
                response.set_cookie(
                    STICKY_COOKIE, "1", max_age=settings.HONUA_REPLICA_STICKY_SECONDS, httponly=True, samesite="Lax"
                )
            return response
        if not reads or STICKY_COOKIE in request.COOKIES:
            return view(request, *args, **kwargs)
        with replica_reads():
            response = view(request, *args, **kwargs)
            if callable(getattr(response, "render", None)) and not getattr(response, "is_rendered", True):
                response.render()
        return response

    return wrapper


class ReplicaRouter:
    """Writes and migrations on the primary; reads where ``read_alias()`` says."""

    def db_for_read(self, model, **hints) -> str:
        return read_alias()

    def db_for_write(self, model, **hints) -> str:
        return PRIMARY_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the replica is a copy of the primary: an object read there is the same row

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == PRIMARY_ALIAS
