"""One exception hierarchy for Honua, and the mapping from a database error's SQLSTATE to it.

The SQL API raises errors with SQLSTATE class ``HN`` (the table in docs/sql-api.md, "Error codes"); functions of
API v1 keep ``P0001`` (a rule broken) and ``P0002`` (something unknown) for their existing errors. Services turn a
database error into one of these exceptions with :func:`from_database_error` (by code, never by message text), so
callers branch on the class::

    HonuaError
    ├── InvalidArgument (ValueError)          HN001  and P0001 of v1 functions
    │   ├── InvalidManifest                   HN002
    │   ├── InvalidImageReference             HN003
    │   └── InvalidBuildOutput                HN004  artifact, log chunk or metric
    ├── NotFound (LookupError)                P0002  of v1 functions
    │   ├── CustomerNotFound                  HN101
    │   ├── LicenseNotFound                   HN102
    │   ├── BuildNotFound                     HN103
    │   └── CredentialNotFound                HN104
    ├── LicenseDenied
    │   ├── LicenseUnusable                   HN201
    │   ├── QuotaExceeded                     HN202
    │   ├── MissingEntitlement                HN203
    │   ├── CredentialLimitReached            HN204
    │   └── CredentialNotOwned                HN205
    └── WrongState
        ├── BuildStateError                   HN301
        └── BuildNotHeld                      HN302

Apps keep their own domain exceptions as subclasses (``builds.cache.services.CacheError``,
``licensing.services.LicensingError``, ``intake.exceptions.IntakeError``; in ``honua`` itself ``crypto.CryptoError``
and ``maintenance_runner.MaintenanceError``), so ``except HonuaError`` catches every error the project raises on
purpose. Translating a database error happens here only (:func:`from_database_error`, used by the SQL-API clients
of ``honua.sqlapi``). A lost database connection is not a HonuaError (the worker's ``DatabaseUnavailable``).
``HonuaError`` defines no ``__init__``: a subclass may also derive from another exception (Django's
``ValidationError``) and keep its constructor. ``sqlstate`` is the code the database raised (None when raised in
Python), ``code`` the class's own.
"""

from __future__ import annotations

from collections.abc import Mapping


class HonuaError(Exception):
    """Base of every error Honua raises on purpose; ``str()`` is the message."""

    code: str | None = None
    sqlstate: str | None = None


class InvalidArgument(HonuaError, ValueError):
    """An argument is NULL, out of range or malformed."""

    code = "HN001"


class InvalidManifest(InvalidArgument):
    """The manifest is not an object, too large, too deep or has a bad ``architectures``."""

    code = "HN002"


class InvalidImageReference(InvalidArgument):
    """An image reference or digest does not follow the OCI grammar."""

    code = "HN003"


class InvalidBuildOutput(InvalidArgument):
    """An artifact (kind, URI, media type, size, digest), a log chunk or a metric is invalid."""

    code = "HN004"


class NotFound(HonuaError, LookupError):
    """Something named by id does not exist."""


class CustomerNotFound(NotFound):
    code = "HN101"


class LicenseNotFound(NotFound):
    code = "HN102"


class BuildNotFound(NotFound):
    code = "HN103"


class CredentialNotFound(NotFound):
    code = "HN104"


class LicenseDenied(HonuaError):
    """The license does not allow it."""


class LicenseUnusable(LicenseDenied):
    """No usable license: none, suspended, revoked, expired or not started."""

    code = "HN201"


class QuotaExceeded(LicenseDenied):
    """The license's monthly build quota is used up."""

    code = "HN202"


class MissingEntitlement(LicenseDenied):
    """A feature the license lacks (``priority_boost``, ``sbom``, ``signing``, ``sub_customers``)."""

    code = "HN203"


class CredentialLimitReached(LicenseDenied):
    code = "HN204"


class CredentialNotOwned(LicenseDenied):
    """A registry credential that belongs to another customer (or to no one)."""

    code = "HN205"


class WrongState(HonuaError):
    """The object is not in a state that allows the operation."""


class BuildStateError(WrongState):
    """Cancel a finished build, retry a queued one, ..."""

    code = "HN301"


class BuildNotHeld(WrongState):
    """The worker does not hold that running build."""

    code = "HN302"


# Each code's class; the v1 codes P0001 / P0002 map to the generic classes.
BY_SQLSTATE: dict[str, type[HonuaError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        InvalidManifest,
        InvalidImageReference,
        InvalidBuildOutput,
        CustomerNotFound,
        LicenseNotFound,
        BuildNotFound,
        CredentialNotFound,
        LicenseUnusable,
        QuotaExceeded,
        MissingEntitlement,
        CredentialLimitReached,
        CredentialNotOwned,
        BuildStateError,
        BuildNotHeld,
    )
}
BY_SQLSTATE["P0001"] = InvalidArgument
BY_SQLSTATE["P0002"] = NotFound


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a database error (Django's wrapper or psycopg's own), else None."""
    for candidate in (error, error.__cause__):
        sqlstate = getattr(candidate, "sqlstate", None) or getattr(getattr(candidate, "diag", None), "sqlstate", None)
        if sqlstate:
            return sqlstate
    return None


def message_of(error: BaseException) -> str:
    """The primary message of a database error (without psycopg's CONTEXT lines), else ``str(error)``."""
    for candidate in (error, error.__cause__):
        message = getattr(getattr(candidate, "diag", None), "message_primary", None)
        if message:
            return message
    return str(error)


def constraint_name_of(error: BaseException) -> str | None:
    """The constraint a database error names (a unique, check or foreign-key violation), else None."""
    for candidate in (error, error.__cause__):
        name = getattr(getattr(candidate, "diag", None), "constraint_name", None)
        if name:
            return name
    return None


def error_for_sqlstate(
    sqlstate: str | None, message: str, overrides: Mapping[str, type[HonuaError]] | None = None
) -> HonuaError | None:
    """The exception for a SQLSTATE (``overrides`` first, then :data:`BY_SQLSTATE`), or None for one Honua does
    not raise on purpose (a bug or an outage: let it propagate)."""
    if not sqlstate:
        return None
    cls = (overrides or {}).get(sqlstate) or BY_SQLSTATE.get(sqlstate)
    if cls is None:
        return None
    error = cls(message)
    error.sqlstate = sqlstate
    return error


def from_database_error(
    error: BaseException, overrides: Mapping[str, type[HonuaError]] | None = None
) -> HonuaError | None:
    """The :class:`HonuaError` for a database error raised by the SQL API, chosen by its SQLSTATE, or None.

    ``overrides`` maps codes to an app's own subclasses (a ``P0002`` of a cache function is a ``CacheNotFound``).
    """
    return error_for_sqlstate(sqlstate_of(error), message_of(error), overrides)
