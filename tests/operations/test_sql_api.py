"""The batched maintenance functions: cleanup_old_build_logs, purge_soft_deleted_records,
archive_build_access_log and index_bloat_estimate, at their boundaries and on bad input."""

import hashlib
import uuid

import pytest
from django.db import connection

from builds.models import Build, BuildCacheEntry, BuildResult
from intake.models import Conversation, ConversationIntent, ConversationMessage, RequirementExtraction
from licensing.models import Customer, License, RegistryCredential
from tests.conftest import raises_db_error
from tests.licensing.factories import CustomerFactory, LicenseFactory


def _hex() -> str:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


def _scalar(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _drain(function: str, days: int, batch_size: int) -> list[int]:
    """Call a batch function until it returns 0; the per-call counts."""
    counts = []
    while True:
        counts.append(_scalar(f"SELECT {function}(%s, %s)", [days, batch_size]))
        if counts[-1] == 0:
            return counts


def _event(age: str) -> int:
    """A build event created ``age`` before the transaction's now() (an SQL interval)."""
    return _scalar(
        "INSERT INTO build_events (build_id, event_type, message, data, created_at)"
        " VALUES (gen_random_uuid(), 'progress', '', '{}', now() - %s::interval) RETURNING id",
        [age],
    )


def _build(license: License) -> Build:
    return Build.objects.create(
        customer=license.customer, license=license, manifest={"n": _hex()}, manifest_hash=_hex(), status="succeeded"
    )


@pytest.mark.django_db
def test_cleanup_keeps_a_log_exactly_at_the_retention_and_deletes_older():
    """cleanup_old_build_logs(90) deletes events older than 90 days; one exactly 90 days old stays."""
    at_boundary = _event("90 days")
    older = _event("90 days 1 microsecond")
    recent = _event("1 day")
    assert _drain("cleanup_old_build_logs", 90, 100) == [1, 0]
    remaining = set(_scalar("SELECT array_agg(id) FROM build_events"))
    assert remaining == {at_boundary, recent} and older not in remaining


@pytest.mark.django_db
def test_cleanup_empties_old_result_logs_and_metrics_but_keeps_results():
    """Old build results keep their row but lose their log; old metrics are deleted; recent ones stay."""
    build = _build(LicenseFactory())
    old = BuildResult.objects.create(build=build, status="succeeded", log="step 1\nstep 2")
    new = BuildResult.objects.create(build=build, status="succeeded", log="recent log")
    BuildResult.objects.filter(pk=old.pk).update(created_at=_scalar("SELECT now() - interval '91 days'"))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO build_metrics (build_id, name, value, unit, recorded_at) VALUES"
            " (%s, 'cpu', 1, '', now() - interval '100 days'), (%s, 'cpu', 2, '', now())",
            [build.pk, build.pk],
        )
    assert sum(_drain("cleanup_old_build_logs", 90, 100)) == 2
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.log, new.log) == ("", "recent log")
    assert _scalar("SELECT array_agg(value) FROM build_metrics") == [2.0]
    assert sum(_drain("cleanup_old_build_logs", 90, 100)) == 0  # idempotent: an emptied log is not counted again


@pytest.mark.django_db
def test_cleanup_works_in_bounded_batches():
    """Each call changes at most the batch size per table, and repeated calls finish the job."""
    for _ in range(5):
        _event("100 days")
    assert _drain("cleanup_old_build_logs", 90, 2) == [2, 2, 1, 0]
    assert _scalar("SELECT count(*) FROM build_events") == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "function", ["cleanup_old_build_logs", "purge_soft_deleted_records", "archive_build_access_log"]
)
def test_negative_retention_is_refused(function):
    """A negative retention (or a batch size under 1) raises a P0 error naming the reason and changes nothing."""
    old = _event("400 days")
    with raises_db_error("retention must be zero or more days, got -1") as info:
        _scalar(f"SELECT {function}(-1)")
    assert info.value.__cause__.sqlstate.startswith("P0")
    with raises_db_error("batch size must be at least 1, got 0"):
        _scalar(f"SELECT {function}(30, 0)")
    assert _scalar("SELECT count(*) FROM build_events WHERE id = %s", [old]) == 1


def _soft_delete(model, pk, age: str) -> None:
    model.objects.filter(pk=pk).update(deleted_at=_scalar("SELECT now() - %s::interval", [age]))


def _conversation(customer: Customer, *, messages: int = 2) -> Conversation:
    conversation = Conversation.objects.create(customer=customer, model="claude-sonnet-4")
    for i in range(messages):
        message = ConversationMessage.objects.create(conversation=conversation, role="user", content=f"m{i}")
    ConversationIntent.objects.create(
        conversation=conversation, message_id=message.pk, intent="new_build", confidence=1
    )
    RequirementExtraction.objects.create(
        conversation=conversation, requirement_type="language", value="python", confidence=1
    )
    return conversation


@pytest.mark.django_db
def test_purge_deletes_conversations_past_the_retention_with_everything_of_theirs():
    """A conversation soft-deleted more than 30 days ago goes with its messages, intents and extractions;
    one soft-deleted exactly 30 days ago, and a live one, stay."""
    customer = CustomerFactory()
    gone = _conversation(customer, messages=3)
    boundary = _conversation(customer)
    live = _conversation(customer)
    _soft_delete(Conversation, gone.pk, "30 days 1 second")
    _soft_delete(Conversation, boundary.pk, "30 days")
    assert sum(_drain("purge_soft_deleted_records", 30, 10)) == 1 + 3 + 1 + 1
    assert set(Conversation.objects.values_list("pk", flat=True)) == {boundary.pk, live.pk}
    assert not ConversationMessage.objects.filter(conversation_id=gone.pk).exists()
    assert ConversationMessage.objects.filter(conversation_id=boundary.pk).count() == 2


@pytest.mark.django_db
def test_purge_keeps_licenses_and_customers_still_referenced():
    """Soft-deleted licenses with builds, and customers something still refers to, are kept; unreferenced go."""
    used = LicenseFactory()
    _build(used)
    unused = LicenseFactory()
    lonely = CustomerFactory()
    for license in (used, unused):
        _soft_delete(License, license.pk, "60 days")
        _soft_delete(Customer, license.customer_id, "60 days")
    _soft_delete(Customer, lonely.pk, "60 days")
    credential = RegistryCredential.objects.create(
        customer=used.customer, registry_type="ghcr", registry_url="ghcr.io", username="u", secret_encrypted="v1:1:eA=="
    )
    _soft_delete(RegistryCredential, credential.pk, "31 days")
    # unused license, its customer (once the license is gone), the lonely customer, the credential
    assert sum(_drain("purge_soft_deleted_records", 30, 1)) == 4
    assert list(License.objects.values_list("pk", flat=True)) == [used.pk]
    assert list(Customer.objects.values_list("pk", flat=True)) == [used.customer_id]
    assert not RegistryCredential.objects.exists()


@pytest.mark.django_db
def test_purge_detaches_builds_served_from_a_purged_cache_entry():
    """Purging a cache entry sets cache_entry to null on the builds served from it (as declared)."""
    license = LicenseFactory()
    entry = BuildCacheEntry.objects.create(
        manifest_hash=_hex(), owner=license.customer, image_reference="r/i:1", image_digest="sha256:x",
        content_sha256=_hex(),
    )  # fmt: skip
    build = _build(license)
    Build.objects.filter(pk=build.pk).update(cache_entry=entry, cache_hit=True)
    _soft_delete(BuildCacheEntry, entry.pk, "31 days")
    assert sum(_drain("purge_soft_deleted_records", 30, 100)) == 1
    build.refresh_from_db()
    assert build.cache_entry_id is None and not BuildCacheEntry.objects.exists()


def _access(age: str) -> int:
    return _scalar(
        "INSERT INTO build_access_log (manifest_hash, customer_id, hit, latency_us, accessed_at)"
        " VALUES (%s, gen_random_uuid(), true, 120, now() - %s::interval) RETURNING id",
        [_hex(), age],
    )


@pytest.mark.django_db
def test_archive_moves_rows_past_the_retention_atomically():
    """archive_build_access_log moves rows older than the retention to the archive table, with the same ids;
    a row exactly at the retention stays live."""
    old = [_access("91 days") for _ in range(3)]
    boundary = _access("90 days")
    assert _drain("archive_build_access_log", 90, 2) == [2, 1, 0]
    assert _scalar("SELECT array_agg(id ORDER BY id) FROM build_access_log_archive") == sorted(old)
    assert _scalar("SELECT array_agg(id) FROM build_access_log") == [boundary]


@pytest.mark.django_db
def test_archive_never_archives_a_row_twice():
    """A row already in the archive (a crash between archive and delete cannot happen, but a restore can) is
    not archived twice: the live copy is removed and the archive keeps one."""
    row = _access("100 days")
    with connection.cursor() as cursor:
        # The archive has no DEFAULT partition (operations 0004): its month is created first, as a batch would.
        cursor.execute("SELECT partition_create_month('build_access_log_archive', now() - interval '100 days')")
        cursor.execute(
            "INSERT INTO build_access_log_archive (id, manifest_hash, customer_id, cache_entry_id, hit, latency_us,"
            " accessed_at) SELECT id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at"
            " FROM build_access_log WHERE id = %s",
            [row],
        )
    assert sum(_drain("archive_build_access_log", 90, 10)) == 1
    assert _scalar("SELECT count(*) FROM build_access_log_archive WHERE id = %s", [row]) == 1
    assert _scalar("SELECT count(*) FROM build_access_log") == 0


@pytest.mark.django_db(transaction=True)
def test_index_bloat_estimate_sees_an_index_after_mass_deletion():
    """After most rows of a table are deleted, its index's estimated bloat ratio is high; freshly built, low."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO build_events (build_id, event_type, message, data)"
            " SELECT gen_random_uuid(), 'progress', '', '{}' FROM generate_series(1, 20000)"
        )
        cursor.execute("REINDEX INDEX build_events_build_idx")  # compact: random uuids leave split pages
        cursor.execute("ANALYZE build_events")
        # build_events is partitioned by month: the rows, and the index pages, are in one partition's index.
        ratio = (
            "SELECT bloat_ratio FROM index_bloat_estimate() WHERE index_name = ("
            " SELECT c.relname FROM pg_partition_tree('build_events_build_idx') t JOIN pg_class c ON c.oid = t.relid"
            " JOIN pg_index i ON i.indexrelid = c.oid"
            " WHERE t.isleaf AND i.indrelid = (SELECT tableoid FROM build_events LIMIT 1))"
        )
        cursor.execute(ratio)
        before = cursor.fetchone()[0]
        cursor.execute("DELETE FROM build_events WHERE id % 10 <> 0")
        cursor.execute("VACUUM ANALYZE build_events")
        cursor.execute(ratio)
        after = cursor.fetchone()[0]
    assert before < 0.2 and after > 0.5
