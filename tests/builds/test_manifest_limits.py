"""Manifest limits (depth, canonical size) and credential ownership, enforced alike by SQL and Python."""

import json
import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone

from builds.cache.services import (
    MANIFEST_MAX_BYTES,
    MANIFEST_MAX_DEPTH,
    InvalidManifest,
    ManifestCredentialError,
    check_manifest_credentials,
    manifest_canonical_json,
    manifest_hash,
)
from builds.models import Build
from builds.queue import services
from tests.licensing.factories import CustomerFactory, LicenseFactory, RegistryCredentialFactory


def _nested(depth: int) -> dict:
    """A manifest whose deepest object is at ``depth`` (the manifest itself is level 1)."""
    manifest: dict = {"leaf": 1}
    for _ in range(depth - 1):
        manifest = {"a": manifest}
    return manifest


def _sql_error(sql: str, params: list) -> tuple[str, str]:
    """(SQLSTATE, primary message) of a statement that must fail."""
    with pytest.raises(Exception) as info, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    diag = info.value.__cause__.diag
    return diag.sqlstate, diag.message_primary


def _sql_hash(manifest) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT manifest_hash(%s::jsonb)", [json.dumps(manifest)])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_sql_and_python_agree_on_the_limits():
    """The SQL functions report the same maxima as builds.cache's constants."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT manifest_max_depth(), manifest_max_bytes()")
        assert cursor.fetchone() == (MANIFEST_MAX_DEPTH, MANIFEST_MAX_BYTES)


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [MANIFEST_MAX_DEPTH + 1, 700])
def test_a_too_deep_manifest_gets_the_documented_error_in_sql_and_python(depth):
    """33 or 700 levels: P0001 with the same message from SQL (not 54001 stack depth) and Python."""
    manifest = _nested(depth)
    sqlstate, message = _sql_error("SELECT manifest_hash(%s::jsonb)", [json.dumps(manifest)])
    with pytest.raises(InvalidManifest) as python_error:
        manifest_hash(manifest)
    assert sqlstate == "P0001"
    assert (
        message
        == str(python_error.value)
        == f"a manifest must not be nested more than {MANIFEST_MAX_DEPTH} levels deep"
    )


@pytest.mark.django_db
def test_arrays_count_as_levels_and_the_maximum_depth_is_accepted():
    """A manifest exactly MANIFEST_MAX_DEPTH deep (arrays included) hashes alike in SQL and Python; one more
    level of array is refused by both."""
    at_limit: dict = {"x": []}
    for _ in range(MANIFEST_MAX_DEPTH - 2):
        at_limit = {"x": [at_limit]} if isinstance(at_limit, dict) else at_limit
    deep = {"k": [[{"v": [1]}]]}  # depth 5
    assert _sql_hash(deep) == manifest_hash(deep)
    manifest = _nested(MANIFEST_MAX_DEPTH - 1)
    inner = manifest
    while "a" in inner:
        inner = inner["a"]
    inner["leaf"] = [1]  # a list as the 32nd level
    assert _sql_hash(manifest) == manifest_hash(manifest)
    inner["leaf"] = [[1]]  # 33rd
    sqlstate, message = _sql_error("SELECT manifest_hash(%s::jsonb)", [json.dumps(manifest)])
    with pytest.raises(InvalidManifest, match="nested more than"):
        manifest_hash(manifest)
    assert (sqlstate, "nested more than" in message) == ("P0001", True)


@pytest.mark.django_db
def test_a_too_large_manifest_gets_the_same_error_in_sql_and_python():
    """Over 256 KiB of canonical text is P0001 with the same message (and byte count) in SQL and Python; keys
    dropped by canonicalisation do not count, and multi-byte characters count in bytes."""
    big = {"base": "alpine", "blob": "é" * (MANIFEST_MAX_BYTES // 2)}
    sqlstate, message = _sql_error("SELECT manifest_hash(%s::jsonb)", [json.dumps(big)])
    with pytest.raises(InvalidManifest) as python_error:
        manifest_canonical_json(big)
    assert sqlstate == "P0001"
    assert message == str(python_error.value)
    assert message.startswith(f"a manifest must not be larger than {MANIFEST_MAX_BYTES} bytes of canonical JSON")
    padded = {"base": "alpine", "_comment": "x" * MANIFEST_MAX_BYTES, "notes": "y" * MANIFEST_MAX_BYTES}
    assert _sql_hash(padded) == manifest_hash(padded)
    exact = {"b": "x" * (MANIFEST_MAX_BYTES - len('{"b":""}'))}
    assert len(manifest_canonical_json(exact)) == MANIFEST_MAX_BYTES
    assert _sql_hash(exact) == manifest_hash(exact)


@pytest.mark.django_db
def test_enqueue_build_refuses_a_10_mb_manifest_and_queues_nothing():
    """enqueue_build refuses a 10 MB manifest with the size error; no build row is written."""
    license = LicenseFactory(starts_at=timezone.now())
    manifest = {"base": "alpine", "blob": "z" * 10_000_000}
    with pytest.raises(services.BuildInputError, match="must not be larger than"):
        services.build_enqueue(customer=license.customer, manifest=manifest)
    assert not Build.objects.exists()


# --- credential references --------------------------------------------------------------------------------------


def _enqueue_sql(customer_id, manifest) -> tuple[str, str]:
    return _sql_error("SELECT enqueue_build(%s, %s::jsonb, 5)", [customer_id, json.dumps(manifest)])


def _python_error(customer_id, manifest) -> tuple[str, str]:
    with pytest.raises(ManifestCredentialError) as info:
        check_manifest_credentials(customer_id, manifest)
    return info.value.sqlstate, str(info.value)


def _push(ref, key="registry_credential_id") -> dict:
    return {"base": "alpine", "push": [{"to": "r.example/app", key: ref}]}


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["registry_credential", "registry_credential_id"])
def test_a_credential_of_the_customer_or_its_parent_is_accepted(key):
    """A manifest naming the customer's own credential, or its parent's (ASP sub-customer), is queued."""
    parent = LicenseFactory(tier="asp").customer  # only a sub_customers license may be a parent
    license = LicenseFactory(starts_at=timezone.now(), customer=CustomerFactory(parent=parent))
    own = RegistryCredentialFactory(customer=license.customer)
    inherited = RegistryCredentialFactory(customer=parent)
    manifest = {"base": {"image": "r.example/b", key: str(own.pk)}, **_push(str(inherited.pk).upper(), key)}
    check_manifest_credentials(license.customer_id, manifest)
    build = services.build_enqueue(customer=license.customer, manifest=manifest)
    assert build.status == Build.Status.QUEUED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make_ref", "sqlstate", "words"),
    [
        (lambda c: str(RegistryCredentialFactory().pk), "HN205", "belongs to another customer"),
        (
            lambda c: str(RegistryCredentialFactory(customer=c, status="revoked", revoked_at=timezone.now()).pk),
            "HN205",
            "revoked or deleted",
        ),
        (
            lambda c: str(RegistryCredentialFactory(customer=c, deleted_at=timezone.now()).pk),
            "HN205",
            "revoked or deleted",
        ),
        (lambda c: str(uuid.uuid4()), "HN104", "does not exist"),
        (lambda c: "cred-1", "HN104", "registry credential cred-1, which does not exist"),
        (lambda c: 42, "HN104", "registry credential given as a number, which does not exist"),
    ],
    ids=["another customer's", "revoked", "deleted", "unknown id", "not an id", "not a string"],
)
def test_a_credential_the_customer_may_not_use_is_refused_everywhere(make_ref, sqlstate, words):
    """enqueue_build, a direct INSERT into build_queue and the Python service all refuse it with the same code and
    message, and nothing is queued."""
    license = LicenseFactory(starts_at=timezone.now())
    manifest = _push(make_ref(license.customer))
    sql = _enqueue_sql(license.customer_id, manifest)
    direct = _sql_error(
        "INSERT INTO build_queue (customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit,"
        " progress, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds, cancel_requested, source)"
        " VALUES (%s, %s, %s::jsonb, repeat('a', 64), 5, 'queued', false, 0, 0, 3, 3600, 120, false, 'test')",
        [license.customer_id, license.pk, json.dumps(manifest)],
    )
    python = _python_error(license.customer_id, manifest)
    assert sql == direct == python
    assert sql[0] == sqlstate and words in sql[1]
    with pytest.raises(services.BuildInputError, match=words):
        services.build_enqueue(customer=license.customer, manifest=manifest)
    assert not Build.objects.exists()


@pytest.mark.django_db
def test_null_credential_references_are_no_references():
    """A null registry_credential(_id) names nothing: the manifest is queued."""
    license = LicenseFactory(starts_at=timezone.now())
    manifest = {"base": "alpine", "registry": {"registry_credential_id": None}, "push": [{"registry_credential": None}]}
    check_manifest_credentials(license.customer_id, manifest)
    assert services.build_enqueue(customer=license.customer, manifest=manifest).status == Build.Status.QUEUED


# --- the build page -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_build_page_folds_a_huge_manifest(admin_client):
    """A 10 MB manifest (a row from before the limit) is shown folded: a <details> with its size and the first
    16 KB, not 10 MB of page; a small one is shown whole and unfolded, escaped."""
    from django.urls import reverse

    from tests.console.factories import BuildFactory

    huge = BuildFactory(manifest={"base": "alpine", "blob": "q" * 10_000_000})
    small = BuildFactory(manifest={"base": "<script>alert(1)</script>"})
    page = admin_client.get(reverse("admin:builds_build_change", args=[huge.pk]))
    assert page.status_code == 200
    assert b'<details class="manifest">' in page.content
    assert b"first 16 KB shown" in page.content
    assert len(page.content) < 200_000
    page = admin_client.get(reverse("admin:builds_build_change", args=[small.pk]))
    assert b'<details class="manifest">' not in page.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content
