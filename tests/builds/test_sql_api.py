"""The build queue's SQL API v1 (DESIGN.md) as build agents call it: enqueue_build, get_next_build_for_worker,
update_build_progress, complete_build, handle_build_timeouts, and the operator functions and views."""

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build, BuildEvent, BuildResult
from tests.builds.factories import BuildFactory
from tests.conftest import raises_db_error
from tests.licensing.factories import CustomerFactory, LicenseFactory

pytestmark = pytest.mark.django_db


def _one(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchone()


def _claim(worker="w1"):
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM get_next_build_for_worker(%s)", [worker])
        row = cursor.fetchone()
        return row[0] if row else None


def _progress(build_id, worker, progress, stage=None):
    return _one("SELECT update_build_progress(%s, %s, %s, %s)", [build_id, worker, progress, stage])[0]


def _complete(build_id, worker, succeeded, ref=None, digest=None, error=None):
    return _one("SELECT complete_build(%s, %s, %s, %s, %s, %s)", [build_id, worker, succeeded, ref, digest, error])[0]


def _enqueue(customer_id, manifest, priority=5):
    return _one("SELECT enqueue_build(%s, %s::jsonb, %s)", [customer_id, json.dumps(manifest), priority])[0]


def _events(build_id):
    return list(BuildEvent.objects.filter(build_id=build_id).values_list("event_type", "from_status", "to_status"))


def _age_heartbeat(build_id, seconds):
    Build.objects.filter(pk=build_id).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=seconds))


DIGEST = "sha256:" + "a" * 64


# --- claiming -----------------------------------------------------------------------------------------------


def test_claims_most_urgent_first_and_fifo_within_a_priority():
    """10 is the most urgent; builds of equal priority are claimed in the order they were queued."""
    license = LicenseFactory(tier="asp")
    builds = [BuildFactory(license=license, priority=p) for p in (5, 10, 5, 1, 10, 5)]
    claimed = [_claim(f"w{i}") for i in range(6)]
    order = [builds[i].pk for i in (1, 4, 0, 2, 5, 3)]
    assert claimed == order
    assert _claim() is None


def test_claim_sets_running_worker_and_times_and_logs_an_event():
    """A claim makes the build running for that worker, with start and heartbeat times and a 'claimed' event."""
    build = BuildFactory()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, status, worker_id, started_at, heartbeat_at FROM get_next_build_for_worker('w7')")
        rows = cursor.fetchall()
    assert len(rows) == 1
    build_id, status, worker, started_at, heartbeat_at = rows[0]
    assert (build_id, status, worker) == (build.pk, "running", "w7")
    assert started_at is not None and heartbeat_at is not None
    assert _events(build.pk) == [("claimed", "queued", "running")]


def test_claim_returns_no_row_on_an_empty_queue():
    """With nothing claimable, get_next_build_for_worker returns zero rows."""
    assert _claim() is None


def test_builds_in_retry_backoff_are_not_claimed():
    """A queued build whose not_before is in the future waits; the next one is claimed instead."""
    license = LicenseFactory(tier="asp")
    waiting = BuildFactory(license=license, priority=10)
    Build.objects.filter(pk=waiting.pk).update(not_before=timezone.now() + dt.timedelta(minutes=1))
    ready = BuildFactory(license=license, priority=1)
    assert _claim() == ready.pk
    assert _claim() is None


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "suspended"},
        {"status": "revoked"},
        {"expires_at": timezone.now() - dt.timedelta(seconds=1), "starts_at": timezone.now() - dt.timedelta(days=9)},
    ],
)
def test_builds_of_unusable_licenses_are_skipped(fields):
    """Builds of a suspended, revoked or expired license stay queued; other customers' builds are claimed."""
    blocked = BuildFactory(license=LicenseFactory(**fields), priority=10)
    other = BuildFactory(priority=1)
    assert _claim() == other.pk
    assert _claim() is None
    assert Build.objects.get(pk=blocked.pk).status == "queued"


def test_max_concurrent_builds_is_enforced_at_claim_time():
    """A core license (1 concurrent build) gets its second build only after the first finishes."""
    core = LicenseFactory(tier="core")
    first, second = BuildFactory(license=core, priority=9), BuildFactory(license=core, priority=9)
    other = BuildFactory(priority=1)
    assert _claim("a") == first.pk
    assert _claim("b") == other.pk  # second is skipped: its license is at its limit
    assert _claim("c") is None
    assert _complete(first.pk, "a", False, error="boom")
    assert _claim("c") == second.pk


def test_a_license_override_of_the_concurrency_limit_wins():
    """max_concurrent_builds_override=2 on a core license lets two of its builds run at once."""
    license = LicenseFactory(tier="core", max_concurrent_builds_override=2)
    builds = [BuildFactory(license=license) for _ in range(3)]
    assert [_claim("a"), _claim("b"), _claim("c")] == [builds[0].pk, builds[1].pk, None]


@pytest.mark.parametrize("worker", ["", "   ", None])
def test_claim_with_an_empty_worker_id_is_an_error(worker):
    """An empty or NULL worker id is rejected with a clear error and claims nothing."""
    build = BuildFactory()
    with raises_db_error("worker id must not be empty"):
        _claim(worker)
    assert Build.objects.get(pk=build.pk).status == "queued"


# --- progress -----------------------------------------------------------------------------------------------


def test_progress_from_the_holder_records_progress_heartbeat_and_stage_events():
    """The holding worker's report updates progress, stage and heartbeat; a new stage is one 'stage' event."""
    build = BuildFactory()
    _claim("w1")
    Build.objects.filter(pk=build.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=1))
    assert _progress(build.pk, "w1", 40, "compile") is True
    assert _progress(build.pk, "w1", 60, "compile") is True
    assert _progress(build.pk, "w1", 70) is True
    build.refresh_from_db()
    assert (build.progress, build.stage) == (70, "compile")
    assert build.heartbeat_at > timezone.now() - dt.timedelta(seconds=30)
    assert [e[0] for e in _events(build.pk)] == ["claimed", "stage"]


def test_progress_from_another_worker_returns_false_and_changes_nothing():
    """A worker that does not hold the build gets false, and the build is untouched."""
    build = BuildFactory()
    _claim("w1")
    assert _progress(build.pk, "intruder", 90, "x") is False
    build.refresh_from_db()
    assert (build.progress, build.stage, build.worker_id) == (0, None, "w1")


@pytest.mark.parametrize("progress", [-1, 101, None])
def test_progress_out_of_range_is_an_error(progress):
    """Progress below 0, above 100 or NULL is rejected, naming the rule."""
    build = BuildFactory()
    _claim("w1")
    with raises_db_error("progress must be an integer from 0 to 100"):
        _progress(build.pk, "w1", progress)
    assert Build.objects.get(pk=build.pk).progress == 0


def test_progress_on_an_unknown_build_is_an_error():
    """An unknown build id is a clear error, not a silent false."""
    missing = uuid.uuid4()
    with raises_db_error(f"build {missing} does not exist"):
        _progress(missing, "w1", 10)


def test_progress_with_an_empty_worker_id_is_an_error():
    """An empty worker id is rejected."""
    build = BuildFactory()
    with raises_db_error("worker id must not be empty"):
        _progress(build.pk, "", 10)


# --- completing ---------------------------------------------------------------------------------------------


def test_failed_completion_is_terminal_with_a_result_row_and_event():
    """complete_build(false) fails the build, records its error, a result with durations, and an event."""
    build = BuildFactory()
    _claim("w1")
    assert _complete(build.pk, "w1", False, error="apt-get failed") is True
    build.refresh_from_db()
    assert (build.status, build.error_message) == ("failed", "apt-get failed")
    assert build.finished_at is not None
    result = BuildResult.objects.get(build=build)
    assert (result.status, result.attempt, result.worker_id) == ("failed", 1, "w1")
    assert result.duration_ms >= 0 and result.queue_wait_ms >= 0
    assert _events(build.pk)[-1] == ("failed", "running", "failed")


def test_complete_from_a_worker_that_does_not_hold_the_build_returns_false():
    """A worker that does not hold the build gets false and nothing changes."""
    build = BuildFactory()
    _claim("w1")
    assert _complete(build.pk, "w2", False, error="x") is False
    build.refresh_from_db()
    assert (build.status, build.worker_id) == ("running", "w1")
    assert not BuildResult.objects.filter(build=build).exists()


def test_a_late_complete_after_the_build_was_rescued_returns_false_and_changes_nothing():
    """A worker that lost its build to a heartbeat timeout cannot complete it later; the requeued build stays."""
    build = BuildFactory()
    _claim("slow")
    _age_heartbeat(build.pk, 600)
    assert _one("SELECT handle_build_timeouts()")[0] == 1
    before = Build.objects.values().get(pk=build.pk)
    events_before = _events(build.pk)
    assert _complete(build.pk, "slow", True, "registry.example/app:1", DIGEST) is False
    assert Build.objects.values().get(pk=build.pk) == before
    assert _events(build.pk) == events_before


def test_success_needs_an_image_reference_and_digest():
    """complete_build(true) without an image is rejected and the build keeps running."""
    build = BuildFactory()
    _claim("w1")
    with raises_db_error("a succeeded build needs an image reference and an image digest"):
        _complete(build.pk, "w1", True)
    assert Build.objects.get(pk=build.pk).status == "running"


def test_complete_on_an_unknown_build_is_an_error():
    """An unknown build id is a clear error."""
    missing = uuid.uuid4()
    with raises_db_error(f"build {missing} does not exist"):
        _complete(missing, "w1", False)


# --- timeouts -----------------------------------------------------------------------------------------------


def test_a_missed_heartbeat_requeues_with_backoff_then_times_out_when_retries_are_spent():
    """Each missed heartbeat requeues with retry_count+1 and a doubling backoff; then the build is timed_out."""
    build = BuildFactory()
    Build.objects.filter(pk=build.pk).update(max_retries=2)
    for attempt, backoff in ((1, 30), (2, 60)):
        Build.objects.filter(pk=build.pk).update(not_before=timezone.now() - dt.timedelta(seconds=1))
        assert _claim(f"w{attempt}") == build.pk
        _age_heartbeat(build.pk, 121)
        assert _one("SELECT handle_build_timeouts()")[0] == 1
        build.refresh_from_db()
        assert (build.status, build.retry_count, build.worker_id) == ("queued", attempt, None)
        wait = (build.not_before - timezone.now()).total_seconds()
        assert backoff - 5 < wait <= backoff
        assert _claim("eager") is None  # still in backoff
    Build.objects.filter(pk=build.pk).update(not_before=timezone.now() - dt.timedelta(seconds=1))
    assert _claim("w3") == build.pk
    _age_heartbeat(build.pk, 121)
    assert _one("SELECT handle_build_timeouts()")[0] == 1
    build.refresh_from_db()
    assert build.status == "timed_out" and build.finished_at is not None
    assert list(BuildResult.objects.filter(build=build).order_by("attempt").values_list("attempt", "status")) == [
        (1, "timed_out"),
        (2, "timed_out"),
        (3, "timed_out"),
    ]
    assert [e[0] for e in _events(build.pk)].count("requeued") == 2
    assert _events(build.pk)[-1] == ("timed_out", "running", "timed_out")


def test_a_fresh_heartbeat_is_left_alone_and_a_total_timeout_is_rescued():
    """Builds heartbeating in time stay running; one running longer than timeout_seconds is rescued."""
    fresh, long = BuildFactory(), BuildFactory()
    _claim("a"), _claim("b")
    Build.objects.filter(pk=long.pk).update(started_at=timezone.now() - dt.timedelta(hours=2))
    assert _one("SELECT handle_build_timeouts()")[0] == 1
    assert Build.objects.get(pk=fresh.pk).status == "running"
    assert Build.objects.get(pk=long.pk).status == "queued"
    assert _one("SELECT handle_build_timeouts()")[0] == 0  # idempotent


def test_a_timed_out_build_whose_cancellation_was_requested_is_cancelled():
    """A stuck build the operator asked to cancel ends cancelled, not requeued."""
    build = BuildFactory()
    _claim("w1")
    assert _one("SELECT cancel_build(%s)", [build.pk])[0] == "cancel_requested"
    _age_heartbeat(build.pk, 600)
    assert _one("SELECT handle_build_timeouts()")[0] == 1
    assert Build.objects.get(pk=build.pk).status == "cancelled"


# --- cancel, retry, reprioritize, release -------------------------------------------------------------------


def test_cancelling_a_queued_build_is_immediate():
    """A queued build is cancelled at once, with a result row and a 'cancelled' event, and is never claimed."""
    build = BuildFactory()
    assert _one("SELECT cancel_build(%s, 'not needed')", [build.pk])[0] == "cancelled"
    build.refresh_from_db()
    assert (build.status, build.error_message) == ("cancelled", "not needed")
    assert _events(build.pk)[-1] == ("cancelled", "queued", "cancelled")
    assert _claim() is None


def test_cancelling_a_running_build_stops_its_worker_at_its_next_progress_call():
    """A running build is marked; the worker's next progress call returns false and the build is cancelled."""
    build = BuildFactory()
    _claim("w1")
    assert _one("SELECT cancel_build(%s)", [build.pk])[0] == "cancel_requested"
    assert Build.objects.get(pk=build.pk).status == "running"
    assert _progress(build.pk, "w1", 50) is False
    build.refresh_from_db()
    assert (build.status, build.cancel_requested) == ("cancelled", True)
    assert [e[0] for e in _events(build.pk)] == ["claimed", "cancel_requested", "cancelled"]
    assert _complete(build.pk, "w1", False) is False


def test_cancelling_a_finished_build_is_an_error():
    """A build that already ended cannot be cancelled."""
    build = BuildFactory()
    _one("SELECT cancel_build(%s)", [build.pk])
    with raises_db_error("is already cancelled and cannot be cancelled"):
        _one("SELECT cancel_build(%s)", [build.pk])


def test_retrying_a_failed_build_queues_it_again():
    """A failed build goes back to queued with its retries renewed and a 'retried' event; attempts continue."""
    build = BuildFactory()
    _claim("w1")
    _complete(build.pk, "w1", False, error="flaky")
    _one("SELECT retry_build(%s)", [build.pk])
    build.refresh_from_db()
    assert (build.status, build.retry_count, build.error_message) == ("queued", 0, None)
    assert _claim("w2") == build.pk
    _complete(build.pk, "w2", False, error="again")
    assert list(BuildResult.objects.filter(build=build).values_list("attempt", flat=True).order_by("attempt")) == [1, 2]


def test_retrying_a_queued_build_is_an_error():
    """Only failed, timed-out or cancelled builds can be retried."""
    build = BuildFactory()
    with raises_db_error("only failed, timed-out or cancelled builds can be retried"):
        _one("SELECT retry_build(%s)", [build.pk])


def test_reprioritizing_changes_the_claim_order():
    """Raising a queued build's priority makes it the next one claimed, with an event recording the change."""
    license = LicenseFactory(tier="asp")
    first, second = BuildFactory(license=license), BuildFactory(license=license)
    _one("SELECT reprioritize_build(%s, 9)", [second.pk])
    assert _claim() == second.pk
    assert _events(second.pk)[0] == ("reprioritized", "queued", "queued")
    with raises_db_error("priority must be an integer from 1 to 10"):
        _one("SELECT reprioritize_build(%s, 11)", [first.pk])
    with raises_db_error("only queued builds can be reprioritized"):
        _one("SELECT reprioritize_build(%s, 3)", [second.pk])


def test_release_hands_a_build_back_without_spending_a_retry():
    """A stopping worker's release requeues the build at once, retry_count unchanged, with a 'released' event."""
    build = BuildFactory()
    _claim("w1")
    assert _one("SELECT release_build(%s, 'w1')", [build.pk])[0] is True
    build.refresh_from_db()
    assert (build.status, build.retry_count, build.worker_id) == ("queued", 0, None)
    assert _events(build.pk)[-1] == ("released", "running", "queued")
    assert _one("SELECT release_build(%s, 'w1')", [build.pk])[0] is False
    assert _claim("w2") == build.pk


# --- enqueue ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", [0, 11, None])
def test_enqueue_rejects_a_priority_outside_1_to_10(priority):
    """Priority 0, 11 or NULL is rejected with a message naming the rule, and nothing is queued."""
    license = LicenseFactory()
    with raises_db_error("priority must be an integer from 1 to 10"):
        _enqueue(license.customer_id, {"base": "alpine"}, priority)
    assert not Build.objects.exists()


@pytest.mark.parametrize("manifest", [[1, 2], "alpine", 3, None])
def test_enqueue_rejects_a_manifest_that_is_not_a_json_object(manifest):
    """A manifest that is an array, string, number or null is rejected, and nothing is queued."""
    license = LicenseFactory()
    with raises_db_error("manifest must be a JSON object"):
        _enqueue(license.customer_id, manifest)
    assert not Build.objects.exists()


def test_enqueue_for_an_unknown_customer_is_an_error():
    """An unknown customer id is named in the error."""
    missing = uuid.uuid4()
    with raises_db_error(f"customer {missing} does not exist"):
        _enqueue(missing, {"base": "alpine"})


@pytest.mark.parametrize(
    ("license_fields", "message"),
    [
        (None, "has no license"),
        ({"status": "suspended"}, r"has no active license \(its license is suspended\)"),
        (
            {"expires_at": timezone.now() - dt.timedelta(days=1), "starts_at": timezone.now() - dt.timedelta(days=30)},
            "has expired",
        ),
    ],
)
def test_enqueue_without_a_usable_license_is_an_error(license_fields, message):
    """No license, a suspended one or an expired one: a clear error naming the reason, nothing queued."""
    customer = CustomerFactory() if license_fields is None else LicenseFactory(**license_fields).customer
    with raises_db_error(message):
        _enqueue(customer.pk, {"base": "alpine"})
    assert not Build.objects.exists()


# --- views --------------------------------------------------------------------------------------------------


def test_views_report_active_builds_performance_and_usage():
    """active_builds lists live builds; build_performance_summary counts outcomes per customer and day with the
    success rate; customer_build_usage shows quota use, running and queued builds."""
    license = LicenseFactory(tier="pro", monthly_build_quota_override=10)
    ok, bad, waiting = (BuildFactory(license=license) for _ in range(3))
    _claim("a"), _claim("b")
    _complete(ok.pk, "a", True, "registry.example/app:1", DIGEST)
    _progress(bad.pk, "b", 10)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, status, customer_name FROM active_builds ORDER BY created_at")
        assert [row[:2] for row in cursor.fetchall()] == [(bad.pk, "running"), (waiting.pk, "queued")]
        _complete(bad.pk, "b", False, error="x")
        cursor.execute(
            "SELECT total_builds, succeeded, failed, success_rate FROM build_performance_summary"
            " WHERE customer_id = %s",
            [license.customer_id],
        )
        assert cursor.fetchone() == (2, 1, 1, Decimal("0.5000"))
        cursor.execute(
            "SELECT monthly_quota, builds_this_month, builds_remaining, running_builds, queued_builds, "
            "max_concurrent_builds FROM customer_build_usage WHERE customer_id = %s",
            [license.customer_id],
        )
        assert cursor.fetchone() == (10, 3, 7, 0, 1, 4)
