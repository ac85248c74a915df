"""License keys and the encrypted columns of this app: generation, blind index, encryption with each column's
associated data (``honua.crypto``)."""

import base64
import secrets

from honua import crypto

LICENSE_KEY_PURPOSE = "licenses.license_key"

# Every encrypted column of the app: (table, column). The re-encryption command walks these.
ENCRYPTED_COLUMNS = (("licenses", "license_key_encrypted"), ("registry_credentials", "secret_encrypted"))


def generate_license_key() -> str:
    """A new license key: ``HONUA-`` and 160 random bits in four groups of base32."""
    text = base64.b32encode(secrets.token_bytes(20)).decode()
    return "HONUA-" + "-".join(text[i : i + 8] for i in range(0, 32, 8))


def normalize_license_key(key: str) -> str:
    """Keys are compared case-insensitively and without surrounding space."""
    return key.strip().upper()


def license_key_index(key: str) -> str:
    """The blind index under which a license key is looked up."""
    return crypto.blind_index(normalize_license_key(key), purpose=LICENSE_KEY_PURPOSE)


def encrypt_license_key(key: str, license_id) -> str:
    return crypto.encrypt(
        normalize_license_key(key), table="licenses", column="license_key_encrypted", row_id=license_id
    )


def decrypt_license_key(stored: str, license_id) -> str:
    return crypto.decrypt(stored, table="licenses", column="license_key_encrypted", row_id=license_id)


def encrypt_secret(secret: str, credential_id) -> str:
    return crypto.encrypt(secret, table="registry_credentials", column="secret_encrypted", row_id=credential_id)


def decrypt_secret(stored: str, credential_id) -> str:
    return crypto.decrypt(stored, table="registry_credentials", column="secret_encrypted", row_id=credential_id)
