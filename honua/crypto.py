"""Secrets at rest: AES-256-GCM with a rotating key ring, and an HMAC-SHA256 blind index (DESIGN.md "Secrets").

A stored value is ``v1:<key id>:<base64(nonce || ciphertext || tag)>``: the key id says which key of the ring
decrypts it, so keys can rotate (the highest id encrypts; older ids only decrypt until their rows are
re-encrypted). The associated data binds a ciphertext to its table, column and row id, so a value copied to
another row or column does not decrypt. Every failure raises ``DecryptionError`` naming the key id, never
garbage and never the plaintext.

Settings: ``HONUA_ENCRYPTION_KEYS`` (``"id:base64-32-byte-key,..."``) and ``HONUA_BLIND_INDEX_KEY`` (base64,
32 bytes).
"""

import base64
import binascii
import dataclasses
import functools
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.views.decorators.debug import sensitive_variables

from honua.errors import HonuaError

FORMAT_VERSION = "v1"
NONCE_BYTES = 12  # 96 bits, fresh for every encryption
KEY_BYTES = 32  # AES-256


class CryptoError(HonuaError):
    """Base class of encryption errors. Messages never contain a secret."""


class DecryptionError(CryptoError):
    """A stored value cannot be decrypted: unknown key id, wrong key, tampering or a malformed value."""


@dataclasses.dataclass(frozen=True)
class KeyRing:
    keys: dict[int, bytes] = dataclasses.field(repr=False)

    @property
    def current_id(self) -> int:
        """The id of the key that encrypts: the highest."""
        return max(self.keys)

    def __repr__(self) -> str:  # never the keys
        return f"<KeyRing ids={sorted(self.keys)} current={self.current_id}>"


def _b64decode(value: str) -> bytes:
    return base64.b64decode(value.strip(), validate=True)


def parse_key_ring(raw: str, *, setting: str = "HONUA_ENCRYPTION_KEYS") -> KeyRing:
    """Parse ``"id:base64key,..."``; ``ImproperlyConfigured`` says what is wrong (never echoing a key)."""
    keys: dict[int, bytes] = {}
    entries = [entry.strip() for entry in (raw or "").split(",") if entry.strip()]
    if not entries:
        raise ImproperlyConfigured(f"{setting} is empty: set it to 'id:base64-32-byte-key[,...]'")
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not key_id.strip().isdigit() or int(key_id) < 1:
            raise ImproperlyConfigured(
                f"{setting} entry {position} must look like 'id:base64key' with a positive whole-number id"
            )
        key_id_int = int(key_id)
        try:
            key = _b64decode(encoded)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(f"{setting}: key {key_id_int} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise ImproperlyConfigured(
                f"{setting}: key {key_id_int} is {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}"
            )
        if key_id_int in keys:
            raise ImproperlyConfigured(f"{setting}: key id {key_id_int} appears twice")
        keys[key_id_int] = key
    return KeyRing(keys=keys)


def parse_blind_index_key(raw: str, *, setting: str = "HONUA_BLIND_INDEX_KEY") -> bytes:
    """The blind-index key: base64 of at least 32 bytes."""
    if not raw:
        raise ImproperlyConfigured(f"{setting} is empty: set it to a base64 key of 32 bytes")
    try:
        key = _b64decode(raw)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{setting} is not valid base64") from None
    if len(key) < KEY_BYTES:
        raise ImproperlyConfigured(f"{setting} is {len(key)} bytes; it needs at least {KEY_BYTES}")
    return key


@functools.cache
def _key_ring(raw: str) -> KeyRing:
    return parse_key_ring(raw)


@functools.cache
def _blind_index_key(raw: str) -> bytes:
    return parse_blind_index_key(raw)


def key_ring() -> KeyRing:
    """The configured key ring (parsed once per settings value)."""
    return _key_ring(settings.HONUA_ENCRYPTION_KEYS)


def _clear_caches(*, setting, **kwargs):
    if setting in ("HONUA_ENCRYPTION_KEYS", "HONUA_BLIND_INDEX_KEY"):
        _key_ring.cache_clear()
        _blind_index_key.cache_clear()


setting_changed.connect(_clear_caches)


def associated_data(table: str, column: str, row_id) -> bytes:
    """What binds a ciphertext to its place: table, column and row id."""
    return f"honua:{table}.{column}:{row_id}".encode()


@sensitive_variables("plaintext")
def encrypt(plaintext: str, *, table: str, column: str, row_id) -> str:
    """Encrypt ``plaintext`` under the newest key, bound to ``table.column`` of row ``row_id``."""
    if not isinstance(plaintext, str) or plaintext == "":
        raise CryptoError(f"refusing to encrypt an empty value for {table}.{column}")
    ring = key_ring()
    key_id = ring.current_id
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.keys[key_id]).encrypt(nonce, plaintext.encode(), associated_data(table, column, row_id))
    return f"{FORMAT_VERSION}:{key_id}:{base64.b64encode(nonce + sealed).decode()}"


def key_id_of(stored: str) -> int:
    """The id of the key a stored value was encrypted with."""
    return _split(stored)[1]


def _split(stored: str) -> tuple[str, int, str]:
    parts = stored.split(":", 2) if isinstance(stored, str) else []
    if len(parts) != 3 or parts[0] != FORMAT_VERSION or not parts[1].isdigit():
        raise DecryptionError(f"not an encrypted value of format {FORMAT_VERSION} (no key id found)")
    return parts[0], int(parts[1]), parts[2]


@sensitive_variables("plaintext", "key")
def decrypt(stored: str, *, table: str, column: str, row_id) -> str:
    """The plaintext of ``stored``; ``DecryptionError`` naming the key id when it cannot be decrypted."""
    _, key_id, payload = _split(stored)
    where = f"{table}.{column} of row {row_id}"
    key = key_ring().keys.get(key_id)
    if key is None:
        raise DecryptionError(
            f"cannot decrypt {where}: it was encrypted with key {key_id}, which is not in HONUA_ENCRYPTION_KEYS"
        )
    try:
        raw = _b64decode(payload)
    except (binascii.Error, ValueError):
        raise DecryptionError(f"cannot decrypt {where} (key {key_id}): the value is not valid base64") from None
    if len(raw) < NONCE_BYTES + 16:
        raise DecryptionError(f"cannot decrypt {where} (key {key_id}): the value is truncated")
    try:
        plaintext = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data(table, column, row_id))
    except InvalidTag:
        raise DecryptionError(
            f"cannot decrypt {where}: key {key_id} does not authenticate it "
            "(a different key under that id, or the value was altered or moved from another row)"
        ) from None
    return plaintext.decode()


def needs_reencryption(stored: str) -> bool:
    """Whether ``stored`` was encrypted with a key older than the newest."""
    return key_id_of(stored) != key_ring().current_id


@sensitive_variables("value", "key")
def blind_index(value: str, *, purpose: str) -> str:
    """HMAC-SHA256 (hex) of ``value`` for equality lookups without decrypting; ``purpose`` separates uses."""
    key = _blind_index_key(settings.HONUA_BLIND_INDEX_KEY)
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def check_configuration() -> None:
    """Raise ``ImproperlyConfigured`` unless both settings hold valid keys."""
    key_ring()
    _blind_index_key(settings.HONUA_BLIND_INDEX_KEY)


def system_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A Django system check (registered by the apps that store secrets): the keys are valid."""
    try:
        check_configuration()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="honua.E001")]
    return []
