"""The build cache's SQL API from Python (docs/sql-api.md, "Build cache"): one typed method per cache SQL function
(and view) the project calls.

The services, the selectors, the demo loader, the maintenance tasks and the ``cache_evict``/``cache_verify``
commands all go through :class:`CacheClient`, so the SQL text of each call is written here and nowhere else in the
project's Python (``tests/builds/test_cache_client.py`` fails on a second copy). Each call runs in its own
savepoint; the cache functions' refusals become :class:`CacheError` (P0001) or :class:`CacheNotFound` (P0002),
their HN codes the classes of :mod:`honua.errors`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from builds.models import BuildCacheEntry
from honua import errors
from honua.sqlapi import SqlApiClient, Statement


class CacheError(errors.HonuaError):
    """A cache operation the database refused (SQLSTATE P0001 of the cache functions); the message names the
    reason."""


class CacheNotFound(CacheError, errors.NotFound):
    """An unknown customer or build (SQLSTATE P0002 of the cache functions)."""


# The cache functions keep v1's codes; HN codes map to honua.errors' classes.
CACHE_ERRORS: dict[str, type[errors.HonuaError]] = {"P0001": CacheError, "P0002": CacheNotFound}


@dataclasses.dataclass(frozen=True)
class EvictedEntry:
    """An entry eviction removed (or, in a dry run, would remove), and why: expired, age, idle or size."""

    cache_entry_id: uuid.UUID
    manifest_hash: str
    owner_id: uuid.UUID
    reason: str
    size_bytes: int
    last_used_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class CorruptEntry:
    """A live entry whose recorded content digest no longer matches what it registers."""

    cache_entry_id: uuid.UUID
    manifest_hash: str
    owner_id: uuid.UUID
    recorded_sha256: str
    actual_sha256: str
    problem: str


# Evict chosen live entries, skipping (and counting) those a queued or running build uses: the admin's action and
# ``cache_verify --evict``. The rows are locked first, so a build that starts using one meanwhile waits.
_EVICT_CHOSEN = """
WITH chosen AS (
    SELECT e.id, cache_entry_in_use(e.id, e.manifest_hash) AS in_use
      FROM build_cache_registry e
     WHERE e.id = ANY(%s::uuid[]) AND e.deleted_at IS NULL
       FOR UPDATE
), evicted AS (
    UPDATE build_cache_registry e SET deleted_at = now()
      FROM chosen c WHERE e.id = c.id AND NOT c.in_use
    RETURNING e.id
)
SELECT (SELECT coalesce(array_agg(id), '{}') FROM evicted), (SELECT count(*) FROM chosen WHERE in_use)
"""


class CacheClient(SqlApiClient):
    """The build cache's SQL functions over one connection (Django's by default)."""

    overrides = CACHE_ERRORS

    # Lookups
    def record_cache_access(self, manifest_hash: str, customer_id: Any) -> BuildCacheEntry | None:
        """The entry this customer may use for ``manifest_hash`` (own first, else shared by tier), or None; the
        lookup is logged as a hit or a miss."""
        statement = ("SELECT * FROM record_cache_access(%s, %s)", [manifest_hash, customer_id])
        entries = self.models(BuildCacheEntry, statement)
        return entries[0] if entries else None

    # Registration
    def register_build_in_cache(self, build_id: Any) -> uuid.UUID:
        """The id of the entry registered (or refreshed) for a succeeded build's image."""
        return self.value(("SELECT register_build_in_cache(%s)", [build_id]))

    def register_cache_entry(
        self,
        manifest_hash: str,
        owner_id: Any,
        visibility: str,
        image_reference: str,
        image_digest: str,
        architectures: Sequence[str],
        size_bytes: int,
        content_sha256: str,
        source_build_id: Any = None,
        build_duration_ms: int | None = None,
        expires_at: dt.datetime | None = None,
    ) -> uuid.UUID:
        """The id of the entry registered (or refreshed) directly, e.g. for an image built elsewhere."""
        return self.value(
            (
                "SELECT register_cache_entry(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    manifest_hash,
                    owner_id,
                    visibility,
                    image_reference,
                    image_digest,
                    list(architectures),
                    size_bytes,
                    content_sha256,
                    source_build_id,
                    build_duration_ms,
                    expires_at,
                ],
            )
        )

    # Maintenance
    def fold_cache_hit_counters(self) -> int:
        """Entries whose hit count and last access took in their sharded counters."""
        return self.value(("SELECT fold_cache_hit_counters()", []))

    def fold_cache_access_rollup(self) -> int:
        """Shard rows of the access rollup folded into one row per (customer, entry)."""
        return self.value(("SELECT fold_cache_access_rollup()", []))

    def evict_cache_entries(
        self,
        max_age: dt.timedelta | None,
        max_idle: dt.timedelta | None,
        max_total_bytes: int | None,
        dry_run: bool,
    ) -> list[EvictedEntry]:
        """The entries evicted (or, with ``dry_run``, that would be), each with its reason."""
        statement = ("SELECT * FROM evict_cache_entries(%s, %s, %s, %s)", [max_age, max_idle, max_total_bytes, dry_run])
        return [EvictedEntry(*row) for row in self.rows(statement)]

    def evict_chosen_cache_entries(self, entry_ids: Sequence[Any]) -> tuple[list[uuid.UUID], int]:
        """(the ids of the chosen live entries evicted, how many were kept because a live build uses them)."""
        row = self.row((_EVICT_CHOSEN, [list(entry_ids)]))
        assert row is not None
        return list(row[0]), row[1]

    def verify_cache_entries(self) -> list[CorruptEntry]:
        """The live entries whose recorded content SHA-256 no longer matches their image and artifacts."""
        return [CorruptEntry(*row) for row in self.rows(("SELECT * FROM verify_cache_entries()", []))]

    # Statistics
    def get_cache_hit_rate(self, customer_id: Any = None, since: dt.datetime | None = None) -> Decimal:
        """Hits / (hits + misses) since ``since`` (the function's default, 30 days, when None)."""
        if since is None:
            return self.value(("SELECT get_cache_hit_rate(%s)", [customer_id]))
        return self.value(("SELECT get_cache_hit_rate(%s, %s)", [customer_id, since]))

    def cache_statistics(self, customer_id: Any = None) -> list[dict[str, Any]]:
        """Rows of the ``cache_statistics`` view as dicts: the overall row first, then one per customer (or only
        that customer's)."""
        statement: Statement
        if customer_id is None:
            statement = ("SELECT * FROM cache_statistics ORDER BY scope = 'customer', customer_name, customer_id", [])
        else:
            statement = ("SELECT * FROM cache_statistics WHERE customer_id = %s", [customer_id])
        return self.dicts(statement)
