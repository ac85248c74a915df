"""Secrets at rest: no plaintext anywhere in the database, none in the audit trail, and key rotation end to end."""

import base64
import io
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from honua import crypto
from licensing import selectors, services
from licensing.management.commands.reencrypt_secrets import ADVISORY_LOCK_KEY
from licensing.models import License, LicenseEvent, RegistryCredential, RegistryCredentialEvent
from tests.conftest import held_elsewhere, sql_rows
from tests.licensing.factories import CustomerFactory, LicenseFactory

pytestmark = pytest.mark.django_db

KEY_1 = "1:" + base64.b64encode(b"\x11" * 32).decode()
KEY_2 = "2:" + base64.b64encode(b"\x22" * 32).decode()
KEY_3 = "3:" + base64.b64encode(b"\x33" * 32).decode()
KEY_9 = "9:" + base64.b64encode(b"\x99" * 32).decode()
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea")


def _columns():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = ANY(%s)",
            [list(TEXT_TYPES)],
        )
        return cursor.fetchall()


def _where_found(needles):
    """(table, column) pairs of every text, json or bytea column holding any needle (also base64 and hex)."""
    variants = set()
    for needle in needles:
        raw = needle.encode()
        variants |= {needle, base64.b64encode(raw).decode().rstrip("="), raw.hex()}
    found = []
    with connection.cursor() as cursor:
        for table, column, data_type in _columns():
            qtable, qcolumn = connection.ops.quote_name(table), connection.ops.quote_name(column)
            for variant in variants:
                if data_type == "bytea":
                    cursor.execute(
                        f"SELECT EXISTS (SELECT 1 FROM {qtable} "
                        f"WHERE position(convert_to(%s, 'UTF8') in {qcolumn}) > 0)",
                        [variant],
                    )
                else:
                    cursor.execute(
                        f"SELECT EXISTS (SELECT 1 FROM {qtable} WHERE strpos({qcolumn}::text, %s) > 0)", [variant]
                    )
                if cursor.fetchone()[0]:
                    found.append((table, column))
    return found


def _populate():
    """Licenses and credentials created, changed, rotated and revoked through the services; their secrets."""
    secrets = []
    customer, issued = services.customer_create_with_trial(name="Scan Co", tier="enterprise")
    secrets.append(issued.key)
    for n, registry_type in enumerate(["dockerhub", "ecr", "ghcr"]):
        secret = f"registry-password-{n}-Zq8!"
        credential = services.credential_add(
            customer=customer,
            registry_type=registry_type,
            registry_url=f"https://r{n}.example",
            username="ci",
            secret=secret,
        )
        secrets.append(secret)
        rotated = f"rotated-password-{n}-Wx3?"
        services.credential_rotate_secret(credential=credential, secret=rotated)
        secrets.append(rotated)
    services.credential_revoke(credential=credential)
    services.license_change_tier(license=issued.license, tier="asp")
    services.license_suspend(license=issued.license)
    other = services.license_issue(customer=CustomerFactory(), tier="core")
    secrets.append(other.key)
    return secrets


def test_no_plaintext_secret_in_any_text_or_bytea_column():
    """After licenses and credentials are created and changed, no column of any table holds a key or secret."""
    secrets = _populate()
    assert len(_columns()) > 20
    assert _where_found(secrets) == []
    # The scan does find what is there: a customer's name, in customers and in its history.
    assert ("customers", "name") in _where_found(["Scan Co"])


def test_history_has_no_secret_columns_but_records_changes():
    """The audit trail records license and credential changes without any secret, index or ciphertext column."""
    _populate()
    license_columns = {f.column for f in LicenseEvent._meta.fields}
    credential_columns = {f.column for f in RegistryCredentialEvent._meta.fields}
    assert not {"license_key_encrypted", "license_key_index"} & license_columns
    assert "secret_encrypted" not in credential_columns
    labels = list(LicenseEvent.objects.filter(tier="asp").values_list("pgh_label", flat=True))
    assert "update" in labels
    assert RegistryCredentialEvent.objects.filter(status="revoked").exists()


def test_rotation_end_to_end(settings):
    """Rows under key 1; key 2 joins; re-encryption; key 1 leaves the ring; everything still decrypts and is found."""
    settings.HONUA_ENCRYPTION_KEYS = KEY_1
    issued = [services.license_issue(customer=CustomerFactory(), tier="enterprise") for _ in range(3)]
    credentials = [
        services.credential_add(
            customer=issued[0].license.customer,
            registry_type="quay",
            registry_url=f"https://q{n}.example",
            username="u",
            secret=f"pw-{n}",
        )
        for n in range(4)
    ]
    settings.HONUA_ENCRYPTION_KEYS = f"{KEY_1},{KEY_2}"
    out = io.StringIO()
    call_command("reencrypt_secrets", "--batch-size=2", stdout=out)
    assert "7 secret(s) re-encrypted under key 2" in out.getvalue()
    assert "[##############################] 3/3" in out.getvalue()
    settings.HONUA_ENCRYPTION_KEYS = KEY_2
    for one in issued:
        license = License.objects.get(pk=one.license.pk)
        assert crypto.key_id_of(license.license_key_encrypted) == 2
        assert selectors.license_key(license=license) == one.key
        assert selectors.license_find_by_key(one.key) == license
    for n, credential in enumerate(credentials):
        credential.refresh_from_db()
        assert selectors.credential_secret(credential=credential) == f"pw-{n}"
    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    assert "0 secret(s) re-encrypted" in out.getvalue()


def test_row_under_an_unknown_key_is_a_clear_error(settings):
    """A secret under a key missing from the ring raises an error naming that key id, never garbage."""
    settings.HONUA_ENCRYPTION_KEYS = KEY_9
    issued = services.license_issue(customer=CustomerFactory(), tier="pro")
    credential = services.credential_add(
        customer=issued.license.customer,
        registry_type="acr",
        registry_url="https://a.example",
        username="u",
        secret="x",
    )
    settings.HONUA_ENCRYPTION_KEYS = KEY_1
    with pytest.raises(crypto.DecryptionError, match="encrypted with key 9, which is not in") as info:
        selectors.license_key(license=issued.license)
    assert issued.key not in str(info.value)
    with pytest.raises(crypto.DecryptionError, match="key 9"):
        selectors.credential_secret(credential=credential)


def test_reencryption_stops_clearly_and_resumes(settings):
    """A row under a missing key stops the run naming that key; once the key is back, a re-run finishes the rest
    without touching the rows the first run already did."""
    settings.HONUA_ENCRYPTION_KEYS = KEY_2
    licenses = [LicenseFactory() for _ in range(6)]
    settings.HONUA_ENCRYPTION_KEYS = KEY_1
    stray = LicenseFactory(id=uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"))  # last in id order
    settings.HONUA_ENCRYPTION_KEYS = f"{KEY_2},{KEY_3}"
    with pytest.raises(CommandError, match="key 1, which is not in HONUA_ENCRYPTION_KEYS") as info:
        call_command("reencrypt_secrets", "--batch-size=1", stdout=io.StringIO())
    assert info.value.returncode == 4
    done_first = dict(
        License.objects.filter(license_key_encrypted__startswith="v1:3:").values_list("pk", "license_key_encrypted")
    )
    settings.HONUA_ENCRYPTION_KEYS = f"{KEY_1},{KEY_2},{KEY_3}"
    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    assert len(done_first) == len(licenses)
    assert "1 secret(s) re-encrypted under key 3" in out.getvalue()
    for pk, value in done_first.items():
        assert License.objects.get(pk=pk).license_key_encrypted == value
    assert all(v.startswith("v1:3:") for v in License.objects.values_list("license_key_encrypted", flat=True))
    assert selectors.license_key(license=stray)


def test_dry_run_counts_and_changes_nothing(settings):
    """--dry-run reports the rows under an older key and changes none."""
    settings.HONUA_ENCRYPTION_KEYS = KEY_1
    LicenseFactory()
    settings.HONUA_ENCRYPTION_KEYS = f"{KEY_1},{KEY_2}"
    before = list(License.objects.values_list("license_key_encrypted", flat=True))
    out = io.StringIO()
    call_command("reencrypt_secrets", "--dry-run", stdout=out)
    assert "licenses.license_key_encrypted: 1 row(s) under an older key" in out.getvalue()
    assert "1 secret(s) would be re-encrypted" in out.getvalue()
    assert list(License.objects.values_list("license_key_encrypted", flat=True)) == before


def test_reencryption_does_not_overlap_itself():
    """While another session holds the command's advisory lock, a second run stops with a clear message."""
    # A session-level lock, as a running command holds it; closing the other connection releases it.
    with held_elsewhere(lambda: sql_rows("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])):
        with pytest.raises(CommandError, match="already running") as info:
            call_command("reencrypt_secrets", stdout=io.StringIO())
        assert info.value.returncode == 3


def test_reprs_never_show_secrets():
    """repr and str of licenses, credentials and issued keys show no secret material."""
    issued = services.license_issue(customer=CustomerFactory(), tier="pro")
    credential = services.credential_add(
        customer=issued.license.customer,
        registry_type="ecr",
        registry_url="https://e.example",
        username="u",
        secret="topsecret-123",
    )
    shown = " ".join([repr(issued), repr(issued.license), str(issued.license), repr(credential), str(credential)])
    assert issued.key not in shown and "topsecret" not in shown and "v1:" not in shown
    assert RegistryCredential.objects.get(pk=credential.pk).secret_encrypted.startswith("v1:")


def test_error_reports_hide_secrets():
    """A failure inside a service that holds a secret produces an error report without it."""
    import sys

    from django.views.debug import ExceptionReporter

    customer = CustomerFactory()  # no license: credential_add fails after receiving the secret
    try:
        services.credential_add(
            customer=customer,
            registry_type="ghcr",
            registry_url="https://g",
            username="u",
            secret="-".join(["report", "me", "not"]),  # built here, so only the service's frame holds it
        )
    except services.LicensingError:
        report = ExceptionReporter(None, *sys.exc_info()).get_traceback_html()
    assert "credential_add" in report
    assert "-".join(["report", "me", "not"]) not in report
