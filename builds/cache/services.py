"""The build cache: the canonical manifest hash, and the services (writes) over ``build_cache_registry`` and
``build_access_log``; the reads are in ``builds.cache.selectors``. The database does the work
(``builds/sql/current/``); these are thin, typed wrappers over ``builds.cache.client.CacheClient``, which writes each
SQL call once and turns the database's refusals into :class:`CacheError`.

Canonical manifest form (the same in :func:`manifest_canonical_json` and SQL ``manifest_canonical_json``; see
docs/sql-api.md "Build cache"):

* objects: members whose value is null are dropped; keys starting with ``_`` are dropped at every depth; the
  top-level keys ``comment``, ``comments``, ``description`` and ``notes`` are dropped; the rest are sorted by key
  in Unicode code point order and written ``{"k":v,...}`` with no whitespace;
* the top-level ``architectures`` (a string or a list of strings) becomes the sorted list of its distinct values,
  each stripped of spaces and with ASCII letters lower-cased;
* arrays keep their order and their nulls;
* numbers are written in plain decimal notation with no exponent and no trailing zeros (``1``, ``1.0``, ``1e0`` are
  all ``1``; ``-0`` is ``0``). A float is taken at its shortest ``repr`` (what ``json.dumps`` sends PostgreSQL);
  parse JSON text with ``parse_float=decimal.Decimal`` to hash its numbers exactly as written;
* strings are JSON strings with the escapes ``\\" \\\\ \\b \\f \\n \\r \\t`` and ``\\u00xx`` for other control
  characters; other characters as they are (UTF-8);
* ``manifest_hash`` is the SHA-256, in lower-case hex, of the UTF-8 bytes of that text.

Limits (the same numbers and messages as SQL ``manifest_check_depth`` / ``manifest_check_size``, P0001): at most
``MANIFEST_MAX_DEPTH`` nested objects/arrays on any path (the manifest itself is level 1), checked without
recursion before canonicalising; at most ``MANIFEST_MAX_BYTES`` bytes of canonical text (UTF-8).

A manifest is *shareable* (its image may be served to other tenants) unless some object in it has a non-null
``registry_credential`` or ``registry_credential_id``: it pulls or pushes with a private registry credential.
"""

import datetime as dt
import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings

from builds.cache.client import CacheClient, EvictedEntry
from builds.cache.client import CacheError as CacheError  # the exceptions the services raise, named here too
from builds.cache.client import CacheNotFound as CacheNotFound
from builds.models import BuildCacheEntry
from honua import errors

NOT_AN_OBJECT = "a manifest must be a JSON object"
BAD_ARCHITECTURES = 'manifest "architectures" must be a string or a list of strings'
BAD_NUMBER = "a manifest number must be finite (no NaN or Infinity)"
BAD_STRING = "a manifest string must be valid Unicode without NUL characters"
BAD_KEY = "a manifest object key must be a string"
MANIFEST_MAX_DEPTH = 32  # SQL manifest_max_depth()
MANIFEST_MAX_BYTES = 262_144  # SQL manifest_max_bytes(): 256 KiB of canonical JSON text
TOO_DEEP = f"a manifest must not be nested more than {MANIFEST_MAX_DEPTH} levels deep"
TOO_LARGE = (
    f"a manifest must not be larger than {MANIFEST_MAX_BYTES} bytes of canonical JSON, this one is {{size}} bytes"
)
CREDENTIAL_UNKNOWN = "the manifest references registry credential {ref}, which does not exist"  # HN104
CREDENTIAL_NOT_OWNED = "the manifest references registry credential {ref}, which belongs to another customer"  # HN205
CREDENTIAL_RETIRED = "the manifest references registry credential {ref}, which is revoked or deleted"  # HN205
_UUID_RE = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
BAD_VALUE = "a manifest value must be JSON: an object, array, string, number, boolean or null"

# Messages of the database's errors (builds/sql/*_cache*.sql) that callers match on, as CacheError text.
HASH_NOT_HEX = "manifest hash must be 64 lower-case hex characters"
NOT_FOUND = "does not exist"  # "customer <id> does not exist", "build <id> does not exist"
NEGATIVE_SIZE = "cache entry size must be a non-negative number of bytes"
NOT_CACHEABLE = "only a successful build is cached"
NO_IMAGE = "has no image reference and digest to cache"
EVICTION_RUNNING = "cache eviction is already running"

EXCLUDED_TOP_LEVEL_KEYS = frozenset({"comment", "comments", "description", "notes"})
CREDENTIAL_KEYS = ("registry_credential", "registry_credential_id")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class InvalidManifest(errors.InvalidManifest):
    """A manifest that cannot be hashed (not a JSON object, or holding values JSON cannot express)."""


def manifest_hash(manifest: dict) -> str:
    """The SHA-256 (64 lower-case hex) of the manifest's canonical JSON; equal to SQL ``manifest_hash``."""
    return hashlib.sha256(manifest_canonical_json(manifest).encode("utf-8")).hexdigest()


def manifest_canonical_json(manifest: dict) -> str:
    """The canonical JSON text of a manifest (module docstring); equal to SQL ``manifest_canonical_json``."""
    if not isinstance(manifest, dict):
        raise InvalidManifest(f"{NOT_AN_OBJECT}, not {type(manifest).__name__}")
    check_manifest_depth(manifest)
    try:
        text = _canonical(manifest, top_level=True)
    except RecursionError:  # unreachable after the depth check; kept as a last guard
        raise InvalidManifest(TOO_DEEP) from None
    size = len(text.encode("utf-8"))
    if size > MANIFEST_MAX_BYTES:
        raise InvalidManifest(TOO_LARGE.format(size=size))
    return text


def check_manifest_depth(manifest) -> None:
    """Raise ``InvalidManifest`` when some object or array sits deeper than ``MANIFEST_MAX_DEPTH`` (no recursion)."""
    stack = [(manifest, 1)]
    while stack:
        value, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > MANIFEST_MAX_DEPTH:
            raise InvalidManifest(TOO_DEEP)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))


class ManifestCredentialError(InvalidManifest):
    """A manifest names a registry credential the customer may not use; ``sqlstate`` is HN104 or HN205."""

    def __init__(self, message: str, sqlstate: str):
        super().__init__(message)
        self.sqlstate = sqlstate


def manifest_credential_refs(manifest) -> list:
    """Every distinct non-null ``registry_credential`` / ``registry_credential_id`` value, at any depth."""
    refs: list = []
    stack = [manifest]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key in CREDENTIAL_KEYS:
                ref = value.get(key)
                if ref is not None and ref not in refs:
                    refs.append(ref)
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return refs


def check_manifest_credentials(customer_id, manifest) -> None:
    """Raise ``ManifestCredentialError`` unless every credential the manifest names is a live (not revoked, not
    deleted) registry credential of the customer or of its parent; the Python mirror of the database's
    ``manifest_credentials_owned`` trigger (builds/sql/0015_manifest_credentials.sql), same messages. One query,
    and none for a manifest without a reference."""
    refs = manifest_credential_refs(manifest)
    if not refs:
        return
    from licensing.models import Customer, RegistryCredential

    ids = {ref.lower() for ref in refs if isinstance(ref, str) and _UUID_RE.match(ref)}
    found = {str(c.pk): c for c in RegistryCredential.objects.filter(pk__in=ids)} if ids else {}
    owners = {str(customer_id)}
    parent = Customer.objects.filter(pk=customer_id).values_list("parent_id", flat=True).first()
    if parent:
        owners.add(str(parent))

    def order(ref):
        return ref if isinstance(ref, str) else json.dumps(ref)

    for ref in sorted(refs, key=order):
        credential = found.get(ref.lower()) if isinstance(ref, str) and _UUID_RE.match(ref) else None
        if credential is None:
            shown = ref[:100] if isinstance(ref, str) else f"given as a {_json_type(ref)}"
            raise ManifestCredentialError(CREDENTIAL_UNKNOWN.format(ref=shown), "HN104")
        if str(credential.customer_id) not in owners:
            raise ManifestCredentialError(CREDENTIAL_NOT_OWNED.format(ref=credential.pk), "HN205")
        if credential.status == RegistryCredential.Status.REVOKED or credential.deleted_at is not None:
            raise ManifestCredentialError(CREDENTIAL_RETIRED.format(ref=credential.pk), "HN205")


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list | tuple) else "string"


def manifest_is_shareable(manifest: dict) -> bool:
    """Whether a manifest uses no private registry credential (SQL ``manifest_is_shareable``)."""
    stack = [manifest]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if any(value.get(key) is not None for key in CREDENTIAL_KEYS):
                return False
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return True


def _canonical(value, *, top_level: bool = False) -> str:
    if isinstance(value, dict):
        parts = []
        for key in sorted(_check_key(key) for key in value):
            member = value[key]
            if member is None or key.startswith("_") or (top_level and key in EXCLUDED_TOP_LEVEL_KEYS):
                continue
            text = _architectures(member) if top_level and key == "architectures" else _canonical(member)
            parts.append(f"{_string(key)}:{text}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    if isinstance(value, str):
        return _string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidManifest(BAD_NUMBER)
        return _number(Decimal(repr(value)))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidManifest(BAD_NUMBER)
        return _number(value)
    raise InvalidManifest(f"{BAD_VALUE}, not {type(value).__name__}")


def _check_key(key) -> str:
    if not isinstance(key, str):
        raise InvalidManifest(f"{BAD_KEY}, not {type(key).__name__}")
    return key


def _string(value: str) -> str:
    if "\x00" in value:
        raise InvalidManifest(BAD_STRING)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidManifest(BAD_STRING) from None
    return json.dumps(value, ensure_ascii=False)


def _number(value: Decimal) -> str:
    if value == 0:
        return "0"
    text = format(value, "f")  # plain notation, exact (no context rounding)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _architectures(value) -> str:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise InvalidManifest(BAD_ARCHITECTURES)
    names = sorted({item.strip(" ").translate(_ASCII_LOWER) for item in items})
    return "[" + ",".join(_string(name) for name in names) + "]"


# Services (writes) ------------------------------------------------------------------------------------------------
# Thin wrappers over CacheClient (builds/cache/client.py), where the SQL text of each call is written.


def cache_access_record(*, manifest_hash: str, customer_id: uuid.UUID) -> BuildCacheEntry | None:
    """The entry this customer may use for ``manifest_hash`` (own first, else shared by tier), or None; logged."""
    return CacheClient().record_cache_access(manifest_hash, customer_id)


def cache_build_register(*, build_id: uuid.UUID) -> uuid.UUID:
    """Register (or refresh) the cache entry of a successful build's image; returns the entry's id."""
    return CacheClient().register_build_in_cache(build_id)


def cache_entry_register(
    *,
    manifest_hash: str,
    owner_id: uuid.UUID,
    visibility: str,
    image_reference: str,
    image_digest: str,
    architectures: list[str],
    size_bytes: int,
    content_sha256: str,
    source_build_id: uuid.UUID | None = None,
    build_duration_ms: int | None = None,
    expires_at: dt.datetime | None = None,
) -> uuid.UUID:
    """Register (or refresh) a cache entry directly, e.g. an image built elsewhere; returns the entry's id."""
    return CacheClient().register_cache_entry(
        manifest_hash,
        owner_id,
        visibility,
        image_reference,
        image_digest,
        architectures,
        size_bytes,
        content_sha256,
        source_build_id,
        build_duration_ms,
        expires_at,
    )


def cache_hit_counters_fold() -> int:
    """Fold the sharded hit counters into the entries' hit_count and last access; returns entries updated."""
    return CacheClient().fold_cache_hit_counters()


def cache_access_rollup_fold() -> int:
    """Fold the access rollup's session shards into one row per (customer, entry); returns shard rows folded."""
    return CacheClient().fold_cache_access_rollup()


def cache_entries_evict(
    *,
    max_age: dt.timedelta | None,
    max_idle: dt.timedelta | None,
    max_total_bytes: int | None,
    dry_run: bool = False,
) -> list[EvictedEntry]:
    """Evict expired, old and idle entries, then least recently used ones down to ``max_total_bytes``; never an
    entry a queued or running build depends on. ``dry_run`` changes nothing and returns what would go."""
    return CacheClient().evict_cache_entries(max_age, max_idle, max_total_bytes, dry_run)


def cache_entries_evict_selected(*, entry_ids: list[uuid.UUID]) -> tuple[int, int]:
    """Evict the given live entries now, except those in use; returns (evicted, skipped because in use)."""
    evicted, skipped = cache_entries_evict_chosen(entry_ids=entry_ids)
    return len(evicted), skipped


def cache_entries_evict_chosen(*, entry_ids: list[uuid.UUID]) -> tuple[list[uuid.UUID], int]:
    """Evict the given live entries now, except those in use; returns (the ids evicted, skipped because in use)."""
    return CacheClient().evict_chosen_cache_entries(entry_ids)


def cache_eviction_policy(
    *, max_age_days: int | None = None, max_idle_days: int | None = None, max_total_bytes: int | None = None
) -> dict:
    """The eviction limits: the arguments given, else the BUILD_CACHE_* settings; 0 turns a limit off."""
    age = settings.BUILD_CACHE_MAX_AGE_DAYS if max_age_days is None else max_age_days
    idle = settings.BUILD_CACHE_MAX_IDLE_DAYS if max_idle_days is None else max_idle_days
    total = settings.BUILD_CACHE_MAX_TOTAL_BYTES if max_total_bytes is None else max_total_bytes
    return {
        "max_age": dt.timedelta(days=age) if age else None,
        "max_idle": dt.timedelta(days=idle) if idle else None,
        "max_total_bytes": total or None,
    }
