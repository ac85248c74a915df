"""Entitlements on the build path (builds/sql/0020_entitlements.sql): outputs fixed at enqueue from the license's
features, carried by the claimed row to the worker, produced exactly by the simulated executor; sbom and signature
artifacts refused for builds not entitled to them; private cache entries shared within a family only."""

import json
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from builds.models import Build, BuildArtifact
from builds.queue import services
from builds.queue.executors import SimulatedExecutor
from builds.queue.worker import Worker
from licensing import services as licensing_services
from tests.builds.cache_factories import lookup, sha
from tests.builds.factories import BuildFactory
from tests.licensing.factories import CustomerFactory, LicenseFactory

EXPECTED = {"core": [], "pro": ["sbom"], "enterprise": ["sbom", "signing"], "asp": ["sbom", "signing"]}
ARTIFACTS = {"core": [], "pro": ["sbom"], "enterprise": ["sbom", "signature"], "asp": ["sbom", "signature"]}


def _enqueue(customer, manifest=None, priority=5):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT enqueue_build(%s, %s::jsonb, %s)",
            [customer.pk, json.dumps({"base": "alpine:3.20", "run": [uuid.uuid4().hex]}), priority],
        )
        return Build.objects.get(pk=cursor.fetchone()[0])


def _insert_artifact_sql(build, kind):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO build_artifacts (build_id, kind, uri, media_type, size_bytes, sha256, metadata, created_at)"
            " VALUES (%s, %s, 's3://bucket/x', 'application/octet-stream', 10, %s, '{}', now())",
            [build.pk, kind, sha(kind)],
        )


def _expect_hn203(message):
    class _Expect:
        def __enter__(self):
            self.raises = pytest.raises(DatabaseError)
            self.info = self.raises.__enter__()
            self.atomic = transaction.atomic()
            self.atomic.__enter__()

        def __exit__(self, *exc):
            self.atomic.__exit__(*exc)
            suppressed = self.raises.__exit__(*exc)
            cause = self.info.value.__cause__
            assert (cause.diag.sqlstate, cause.diag.message_primary) == ("HN203", message)
            return suppressed

    return _Expect()


# --- entitled outputs ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("tier", list(EXPECTED))
def test_enqueue_fixes_the_outputs_the_license_entitles(tier):
    """enqueue_build records the license's sbom/signing features in entitled_outputs, for every tier, as
    license_entitled_outputs (whose expression the trigger function inlines) says."""
    license = LicenseFactory(tier=tier)
    build = _enqueue(license.customer)
    assert build.entitled_outputs == EXPECTED[tier]
    with connection.cursor() as cursor:
        cursor.execute("SELECT license_entitled_outputs(%s), license_entitled_outputs(%s)", [license.pk, uuid.uuid4()])
        assert cursor.fetchone() == (EXPECTED[tier], [])


@pytest.mark.django_db
def test_feature_overrides_decide_the_outputs():
    """A core license with signing turned on is entitled to signing only; an enterprise one without sbom to
    signing only."""
    core = LicenseFactory(tier="core", feature_overrides={"signing": True})
    enterprise = LicenseFactory(tier="enterprise", feature_overrides={"sbom": False})
    assert _enqueue(core.customer).entitled_outputs == ["signing"]
    assert _enqueue(enterprise.customer).entitled_outputs == ["signing"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT license_entitled_outputs(%s), license_entitled_outputs(%s)", [core.pk, enterprise.pk])
        assert cursor.fetchone() == (["signing"], ["signing"])


@pytest.mark.django_db
def test_an_insert_cannot_claim_outputs_its_license_lacks():
    """An INSERT naming entitled_outputs gets the license's outputs instead (the trigger decides)."""
    build = BuildFactory(license=LicenseFactory(tier="core"), entitled_outputs=["sbom", "signing"])
    build.refresh_from_db()
    assert build.entitled_outputs == []


@pytest.mark.django_db
def test_outputs_stay_fixed_when_the_license_changes_later():
    """A build enqueued under enterprise keeps sbom and signing after a downgrade to core; new builds do not."""
    license = LicenseFactory(tier="enterprise")
    before = _enqueue(license.customer)
    licensing_services.license_change_tier(license=license, tier="core")
    after = _enqueue(license.customer)
    before.refresh_from_db()
    assert (before.entitled_outputs, after.entitled_outputs) == (["sbom", "signing"], [])


@pytest.mark.django_db
def test_the_claimed_row_carries_the_outputs():
    """get_next_build_for_worker hands the worker the build's entitled_outputs."""
    build = _enqueue(LicenseFactory(tier="enterprise").customer)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, entitled_outputs FROM get_next_build_for_worker('w1')")
        assert cursor.fetchone() == (build.pk, ["sbom", "signing"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("tier", list(ARTIFACTS))
def test_the_simulated_executor_produces_exactly_the_entitled_outputs(tier):
    """Through the reference worker, the simulated executor attaches an SBOM only when entitled to sbom and a
    signature only when entitled to signing; a core build gets neither."""
    build = _enqueue(LicenseFactory(tier=tier).customer)
    Worker(executor=SimulatedExecutor(stage_seconds=0), exit_when_idle=True, reap_interval=0).run()
    build.refresh_from_db()
    assert build.status == "succeeded"
    kinds = sorted(BuildArtifact.objects.filter(build=build).values_list("kind", flat=True))
    assert kinds == ARTIFACTS[tier]
    if "signature" in kinds:
        signature = BuildArtifact.objects.get(build=build, kind="signature")
        assert signature.media_type == "application/vnd.dev.cosign.simplesigning.v1+json"
        assert build.image_digest.replace(":", "-") in signature.uri


# --- artifacts ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_plain_sql_cannot_attach_artifacts_the_build_is_not_entitled_to():
    """An sbom for a core build and a signature for a pro build are refused with HN203; other kinds are not."""
    core = _enqueue(LicenseFactory(tier="core").customer)
    pro = _enqueue(LicenseFactory(tier="pro").customer)
    with _expect_hn203(services.ARTIFACT_NOT_ENTITLED.format(build=core.pk, kind="sbom", feature="sbom")):
        _insert_artifact_sql(core, "sbom")
    with _expect_hn203(services.ARTIFACT_NOT_ENTITLED.format(build=pro.pk, kind="signature", feature="signing")):
        _insert_artifact_sql(pro, "signature")
    _insert_artifact_sql(core, "image")
    _insert_artifact_sql(core, "report")
    _insert_artifact_sql(pro, "sbom")
    refused = services.ARTIFACT_NOT_ENTITLED.format(build=core.pk, kind="sbom", feature="sbom")
    with _expect_hn203(refused), connection.cursor() as cursor:
        cursor.execute("UPDATE build_artifacts SET kind = 'sbom' WHERE build_id = %s AND kind = 'report'", [core.pk])
    assert sorted(BuildArtifact.objects.values_list("kind", flat=True)) == ["image", "report", "sbom"]


@pytest.mark.django_db
def test_build_entitled_to_artifact():
    """build_entitled_to_artifact: sbom needs sbom, signature needs signing, other kinds always; unknown build or
    NULL kind: false."""
    enterprise = _enqueue(LicenseFactory(tier="enterprise").customer)
    core = _enqueue(LicenseFactory(tier="core").customer)
    cases = [
        (enterprise.pk, "sbom", True),
        (enterprise.pk, "signature", True),
        (core.pk, "sbom", False),
        (core.pk, "signature", False),
        (core.pk, "image", True),
        (core.pk, None, False),
        (uuid.uuid4(), "image", False),
    ]
    with connection.cursor() as cursor:
        for build_id, kind, expected in cases:
            cursor.execute("SELECT build_entitled_to_artifact(%s, %s)", [build_id, kind])
            assert cursor.fetchone()[0] is expected, (build_id, kind)


@pytest.mark.django_db
def test_the_service_refuses_with_the_same_message():
    """build_artifact_attach raises ArtifactNotEntitled with the trigger's message and stores nothing."""
    core = _enqueue(LicenseFactory(tier="core").customer)
    Build.objects.filter(pk=core.pk).update(status="running", worker_id="w/0", started_at=timezone.now())
    with pytest.raises(services.ArtifactNotEntitled) as info:
        services.build_artifact_attach(
            build=core,
            worker_id="w/0",
            kind="sbom",
            uri="s3://b/x",
            media_type="application/spdx+json",
            size_bytes=1,
            digest="sha256:" + sha("x"),
        )
    assert str(info.value) == services.ARTIFACT_NOT_ENTITLED.format(build=core.pk, kind="sbom", feature="sbom")
    assert not BuildArtifact.objects.exists()


# --- family cache sharing -----------------------------------------------------------------------------------------


def _family(parent_tier="asp"):
    parent = LicenseFactory(tier=parent_tier).customer
    children = [CustomerFactory(), CustomerFactory()]
    for child in children:
        licensing_services.customer_set_parent(customer=child, parent=parent)
    return parent, children


def _private_entry(owner, manifest_hash_=None):
    """A live private cache entry of ``owner`` (register_cache_entry, as complete_build would)."""
    manifest_hash_ = manifest_hash_ or sha(uuid.uuid4().hex)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT register_cache_entry(%s, %s, 'private', 'registry.example/app:1', %s, '{amd64}', 100, %s)",
            [manifest_hash_, owner.pk, "sha256:" + sha(manifest_hash_), sha("content" + manifest_hash_)],
        )
        return cursor.fetchone()[0], manifest_hash_


@pytest.mark.django_db
def test_private_entries_are_shared_within_a_family():
    """A sub-customer's private entry is served to its parent and siblings; the parent's to its sub-customers."""
    parent, (first, second) = _family()
    entry_id, hash_ = _private_entry(first)
    assert lookup(hash_, second.pk).pk == entry_id
    assert lookup(hash_, parent.pk).pk == entry_id
    parent_entry, parent_hash = _private_entry(parent)
    assert lookup(parent_hash, first.pk).pk == parent_entry
    assert lookup(parent_hash, second.pk).pk == parent_entry


@pytest.mark.django_db
def test_private_entries_are_not_shared_outside_the_family():
    """Another asp customer, another family's sub-customer and a customer whose parent was removed get nothing."""
    parent, (first, second) = _family()
    other_parent, (other_child, _) = _family()
    outsider = LicenseFactory(tier="asp").customer
    entry_id, hash_ = _private_entry(first)
    for customer in (outsider, other_parent, other_child):
        assert lookup(hash_, customer.pk) is None
    licensing_services.customer_set_parent(customer=second, parent=None)
    assert lookup(hash_, second.pk) is None
    assert lookup(hash_, parent.pk).pk == entry_id


@pytest.mark.django_db
def test_own_entry_first_then_the_family():
    """A customer's own entry wins over a family member's entry for the same hash; the hit is logged."""
    _, (first, second) = _family()
    theirs, hash_ = _private_entry(first)
    mine, _ = _private_entry(second, hash_)
    assert lookup(hash_, second.pk).pk == mine
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT hit, cache_entry_id FROM build_access_log WHERE customer_id = %s ORDER BY id", [second.pk]
        )
        assert cursor.fetchall() == [(True, mine)]
    assert theirs != mine


@pytest.mark.django_db
def test_a_deleted_family_member_shares_nothing():
    """Entries of a soft-deleted sub-customer are not served to its family."""
    parent, (first, _) = _family()
    _, hash_ = _private_entry(first)
    first.deleted_at = first.created_at
    first.save()
    assert lookup(hash_, parent.pk) is None


@pytest.mark.django_db
def test_a_sub_customer_reads_shared_entries_by_its_parents_tier():
    """A sub-customer without a license of its own reads shared entries because its parent's asp tier does."""
    _, (child, _) = _family()
    publisher = LicenseFactory(tier="enterprise").customer
    with connection.cursor() as cursor:
        hash_ = sha("shared")
        cursor.execute(
            "SELECT register_cache_entry(%s, %s, 'shared', 'registry.example/app:1', %s, '{amd64}', 1, %s)",
            [hash_, publisher.pk, "sha256:" + sha("d"), sha("c")],
        )
        shared_id = cursor.fetchone()[0]
    assert lookup(hash_, child.pk).pk == shared_id
    assert lookup(hash_, CustomerFactory().pk) is None  # no license, no family: no shared entries


@pytest.mark.django_db
def test_a_family_shares_only_while_its_parents_license_has_the_feature():
    """With the parent's license suspended, neither the parent nor its sub-customers see each other's entries."""
    parent, (first, second) = _family()
    entry_id, hash_ = _private_entry(first)
    parent_entry, parent_hash = _private_entry(parent)
    license = parent.licenses.get()
    licensing_services.license_suspend(license=license)
    assert lookup(hash_, second.pk) is None
    assert lookup(hash_, parent.pk) is None
    assert lookup(parent_hash, first.pk) is None
    licensing_services.license_reinstate(license=license)
    assert lookup(hash_, second.pk).pk == entry_id
    assert lookup(parent_hash, first.pk).pk == parent_entry
