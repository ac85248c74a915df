"""Scheduler speed (builds/sql/0027_scheduler_speed.sql): the counters' inline claim and completion paths, the
build_queue triggers without django-pgtrigger's wrapper, and cache_content_sha256 in PL/pgSQL."""

import hashlib

import pytest
from django.db import connection

from builds.models import Build, BuildLicenseState, BuildMemberState
from tests.builds.test_scheduler import DIGEST, REF, _claim, _enqueue, _family, _license
from tests.conftest import sql_rows

pytestmark = pytest.mark.django_db


def _expected_counters():
    """The license and member counters recounted from build_queue: {license: (running, queued, urgent)}, and
    {(license, customer): (queued, urgent)} for members with queued builds."""
    licenses, members = {}, {}
    for license_id, customer_id, status, priority in Build.objects.values_list(
        "license_id", "customer_id", "status", "priority"
    ):
        running, queued, urgent = licenses.get(license_id, (0, 0, 0))
        m_queued, m_urgent = members.get((license_id, customer_id), (0, 0))
        if status == "running":
            running += 1
        elif status == "queued":
            queued, urgent = queued + 1, urgent + (priority >= 9)
            m_queued, m_urgent = m_queued + 1, m_urgent + (priority >= 9)
        licenses[license_id] = (running, queued, urgent)
        members[(license_id, customer_id)] = (m_queued, m_urgent)
    return licenses, {key: value for key, value in members.items() if value != (0, 0)}


def _counters():
    licenses = {s.license_id: (s.running, s.queued, s.urgent_queued) for s in BuildLicenseState.objects.all()}
    members = {
        (m.license_id, m.customer_id): (m.queued, m.urgent_queued)
        for m in BuildMemberState.objects.all()
        if (m.queued, m.urgent_queued) != (0, 0)
    }
    return {k: v for k, v in licenses.items() if v != (0, 0, 0)}, members


def test_claims_and_every_kind_of_completion_keep_the_counters_exact():
    """Claims (urgent ones and a family's members) then succeeded, failed, retryable and cancelled completions
    leave the license and member counters equal to a recount of build_queue."""
    urgent_license = _license("enterprise")
    _enqueue(urgent_license.customer, 4, tag="u-normal")
    _enqueue(urgent_license.customer, 3, priority=10, tag="u-urgent")
    parent_license, parent, children = _family()
    for member in (parent, *children):
        _enqueue(member, 3, tag=f"f-{member.pk}")
    claimed = [_claim() for _ in range(12)]
    assert all(claimed)
    results = ["succeeded", "failed", "retryable", "succeeded", "failed", "retryable"]
    for (build_id, *_rest), result in zip(claimed, results, strict=False):
        sql_rows("SELECT complete_build_v2(%s, 'w', %s, %s, %s, 'boom')", [build_id, result, REF, DIGEST])
    sql_rows("SELECT cancel_build(%s)", [claimed[6][0]])
    sql_rows("SELECT complete_build_v2(%s, 'w', 'succeeded', %s, %s)", [claimed[6][0], REF, DIGEST])
    assert Build.objects.get(pk=claimed[6][0]).status == "cancelled"
    assert _counters() == _expected_counters()
    assert BuildLicenseState.objects.get(license=parent_license).running == sum(
        1 for row in claimed[7:] if row[1] == parent_license.pk
    )


def test_a_claim_advances_virtual_time_by_the_inverse_weight():
    """One claim adds 1/scheduling_weight to its license's virtual time and 1 to its member's."""
    lic = _license("enterprise")  # weight 4
    _enqueue(lic.customer, 2)
    query = (
        "SELECT s.vtime, m.vtime FROM build_license_state s"
        " JOIN build_member_state m ON m.license_id = s.license_id WHERE s.license_id = %s"
    )
    ((license_before, member_before),) = sql_rows(query, [lic.pk])
    assert _claim() is not None
    ((license_after, member_after),) = sql_rows(query, [lic.pk])
    assert license_after - license_before == pytest.approx(0.25)
    assert member_after - member_before == pytest.approx(1)


def test_plain_updates_still_set_updated_at_and_ignore_nothing():
    """A plain UPDATE of build_queue sets updated_at to the transaction's time through the direct trigger."""
    lic = _license("pro")
    (build_id,) = _enqueue(lic.customer, 1)
    sql_rows("UPDATE build_queue SET updated_at = '2000-01-01', stage = 'x' WHERE id = %s", [build_id])
    assert sql_rows("SELECT updated_at = now() FROM build_queue WHERE id = %s", [build_id]) == [(True,)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname, p.proname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
            " WHERE t.tgrelid = 'build_queue'::regclass AND t.tgname LIKE %s",
            ["%update%"],
        )
        functions = dict(cursor.fetchall())
    # Every UPDATE trigger executes its function directly (no pgtrigger wrapper); build_daily_rollup_mark since
    # 0032_daily_rollup (it returns at once for today's builds).
    assert sorted(functions.values()) == [
        "build_daily_rollup_mark",
        "build_queue_account_row",
        "build_queue_set_updated_at",
    ]


def test_cache_content_sha256_is_the_documented_digest():
    """cache_content_sha256 hashes the image, digest and the source build's image artifacts, one line each."""
    lic = _license("pro")
    (build_id,) = _enqueue(lic.customer, 1)
    sql_rows(
        "INSERT INTO build_artifacts (build_id, kind, uri, media_type, size_bytes, sha256, metadata)"
        " VALUES (%s, 'image', 'oci://b', 'application/vnd.oci.image.manifest.v1+json', 7, %s, '{}'),"
        "        (%s, 'image', 'oci://a', 'application/vnd.oci.image.manifest.v1+json', 5, %s, '{}')",
        [build_id, "b" * 64, build_id, "a" * 64],
    )
    text = f"{REF}\n{DIGEST}\n{'a' * 64} 5 oci://a\n{'b' * 64} 7 oci://b"
    got = sql_rows("SELECT cache_content_sha256(%s, %s, %s)", [REF, DIGEST, build_id])[0][0]
    assert got == hashlib.sha256(text.encode()).hexdigest()
    assert sql_rows("SELECT cache_content_sha256(NULL, %s, %s)", [DIGEST, build_id]) == [(None,)]
