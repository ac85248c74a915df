"""honua.crypto: AES-256-GCM with a key ring, associated data, clear errors, and the HMAC blind index."""

import base64
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from honua import crypto
from tests.conftest import run_manage
from tests.honua.test_config import PRODUCTION

KEY_1 = base64.b64encode(b"\x01" * 32).decode()
KEY_2 = base64.b64encode(b"\x02" * 32).decode()
PLACE = {"table": "licenses", "column": "license_key_encrypted", "row_id": "0b8a4f52-1111-4c5e-9a4f-000000000001"}


@pytest.fixture
def ring_1(settings):
    settings.HONUA_ENCRYPTION_KEYS = f"1:{KEY_1}"
    return settings


def test_round_trip_under_the_highest_key(settings):
    """A value encrypts under the highest key id and decrypts back to itself."""
    settings.HONUA_ENCRYPTION_KEYS = f"2:{KEY_2},1:{KEY_1}"
    stored = crypto.encrypt("s3cret value", **PLACE)
    assert stored.startswith("v1:2:")
    assert crypto.key_id_of(stored) == 2
    assert crypto.decrypt(stored, **PLACE) == "s3cret value"


def test_fresh_nonce_every_time(ring_1):
    """The same plaintext encrypts to different values (a fresh 96-bit nonce each time), none containing it."""
    first, second = crypto.encrypt("same", **PLACE), crypto.encrypt("same", **PLACE)
    assert first != second
    assert "same" not in first
    assert len(base64.b64decode(first.split(":")[2])) == crypto.NONCE_BYTES + len("same") + 16


@pytest.mark.parametrize(
    "other",
    [
        {"row_id": "0b8a4f52-1111-4c5e-9a4f-000000000002"},
        {"column": "secret_encrypted"},
        {"table": "registry_credentials"},
    ],
)
def test_associated_data_binds_value_to_its_row_column_and_table(ring_1, other):
    """A value moved to another row, column or table does not decrypt; the error names the key id."""
    stored = crypto.encrypt("bound", **PLACE)
    with pytest.raises(crypto.DecryptionError, match="key 1 does not authenticate it"):
        crypto.decrypt(stored, **{**PLACE, **other})


def test_unknown_key_id_is_a_clear_error(settings):
    """A value under a key that is not in the ring raises an error naming that key id, not garbage."""
    settings.HONUA_ENCRYPTION_KEYS = f"2:{KEY_2}"
    stored = crypto.encrypt("x", **PLACE)
    settings.HONUA_ENCRYPTION_KEYS = f"1:{KEY_1}"
    with pytest.raises(crypto.DecryptionError, match="encrypted with key 2, which is not in HONUA_ENCRYPTION_KEYS"):
        crypto.decrypt(stored, **PLACE)


def test_wrong_key_under_the_same_id_is_a_clear_error(settings):
    """A different key under the same id fails authentication with an error naming the id."""
    settings.HONUA_ENCRYPTION_KEYS = f"1:{KEY_1}"
    stored = crypto.encrypt("x", **PLACE)
    settings.HONUA_ENCRYPTION_KEYS = f"1:{KEY_2}"
    with pytest.raises(crypto.DecryptionError, match="key 1 does not authenticate"):
        crypto.decrypt(stored, **PLACE)


@pytest.mark.parametrize("stored", ["", "plain text", "v1:x:abc", "v2:1:abc", "v1:1:not base64!", "v1:1:AAAA"])
def test_malformed_values_are_clear_errors(ring_1, stored):
    """Malformed or truncated stored values raise DecryptionError, never return something."""
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(stored, **PLACE)


def test_tampered_ciphertext_is_rejected(ring_1):
    """Flipping one bit of the ciphertext is detected."""
    stored = crypto.encrypt("tamper me", **PLACE)
    prefix, payload = stored.rsplit(":", 1)
    raw = bytearray(base64.b64decode(payload))
    raw[-1] ^= 1
    with pytest.raises(crypto.DecryptionError, match="key 1"):
        crypto.decrypt(f"{prefix}:{base64.b64encode(bytes(raw)).decode()}", **PLACE)


def test_empty_plaintext_is_refused(ring_1):
    """Encrypting an empty secret is refused with a message naming the column, not stored."""
    with pytest.raises(crypto.CryptoError, match=r"licenses\.license_key_encrypted"):
        crypto.encrypt("", **PLACE)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "is empty"),
        (KEY_1, "entry 1 must look like 'id:base64key'"),
        (f"0:{KEY_1}", "positive whole-number id"),
        (f"a:{KEY_1}", "positive whole-number id"),
        ("1:***", "key 1 is not valid base64"),
        (f"1:{base64.b64encode(b'short').decode()}", "key 1 is 5 bytes; AES-256 needs exactly 32"),
        (f"1:{KEY_1},1:{KEY_2}", "key id 1 appears twice"),
    ],
)
def test_key_ring_validation(raw, message):
    """A malformed key ring is refused with a message saying what is wrong, never echoing a key."""
    with pytest.raises(ImproperlyConfigured, match=message) as info:
        crypto.parse_key_ring(raw)
    assert KEY_1 not in str(info.value)


def test_key_ring_repr_hides_keys():
    """The key ring's repr lists ids only."""
    ring = crypto.parse_key_ring(f"1:{KEY_1}, 3:{KEY_2}")
    assert ring.current_id == 3
    assert repr(ring) == "<KeyRing ids=[1, 3] current=3>"
    assert KEY_1 not in repr(ring) and "b'" not in repr(ring)


@pytest.mark.parametrize(("raw", "message"), [("", "is empty"), ("!!", "not valid base64"), ("AAAA", "at least 32")])
def test_blind_index_key_validation(raw, message):
    """A malformed blind-index key is refused with a clear message."""
    with pytest.raises(ImproperlyConfigured, match=message):
        crypto.parse_blind_index_key(raw)


def test_blind_index_is_deterministic_keyed_and_purpose_bound(settings):
    """The blind index is a stable hex HMAC that depends on the key and the purpose."""
    first = crypto.blind_index("HONUA-KEY", purpose="a")
    assert first == crypto.blind_index("HONUA-KEY", purpose="a")
    assert len(first) == 64 and int(first, 16) >= 0
    assert first != crypto.blind_index("HONUA-KEY", purpose="b")
    settings.HONUA_BLIND_INDEX_KEY = base64.b64encode(os.urandom(32)).decode()
    assert first != crypto.blind_index("HONUA-KEY", purpose="a")


def test_needs_reencryption_follows_the_newest_key(settings):
    """A value under an older key needs re-encryption once a newer key joins the ring."""
    settings.HONUA_ENCRYPTION_KEYS = f"1:{KEY_1}"
    stored = crypto.encrypt("x", **PLACE)
    assert not crypto.needs_reencryption(stored)
    settings.HONUA_ENCRYPTION_KEYS = f"1:{KEY_1},2:{KEY_2}"
    assert crypto.needs_reencryption(stored)


def test_production_refuses_a_malformed_key_ring():
    """Production settings stop with a one-line error when the key ring is malformed, without echoing it."""
    result = run_manage("check", env={**PRODUCTION, "HONUA_ENCRYPTION_KEYS": "1:tooshort"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "HONUA_ENCRYPTION_KEYS" in result.stderr and "tooshort" not in result.stderr


def test_system_check_reports_a_bad_key_ring(settings):
    """manage.py check reports a malformed key ring as an error naming the setting."""
    assert crypto.system_check() == []
    settings.HONUA_ENCRYPTION_KEYS = "1:AAAA"
    errors = crypto.system_check()
    assert [error.id for error in errors] == ["honua.E001"]
    assert "HONUA_ENCRYPTION_KEYS: key 1 is 3 bytes" in errors[0].msg
