"""The reference worker (manage.py run_build_worker): draining, LISTEN wake-up, executors, cancellation, rescue,
and graceful SIGTERM that loses nothing."""

import datetime as dt
import signal
import sys
import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from builds.models import Build, BuildArtifact, BuildEvent, BuildLogChunk, BuildMetric, BuildResult
from builds.queue import selectors, services
from builds.queue.executors import CommandExecutor, Outcome, SimulatedExecutor
from builds.queue.worker import Worker
from tests.builds.factories import BuildFactory
from tests.conftest import start_manage, start_worker, wait_for
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(predicate, timeout=20.0):
    return wait_for(predicate, timeout, interval=0.02)


def _statuses():
    return sorted(Build.objects.values_list("status", flat=True))


def test_the_command_drains_the_queue_with_the_noop_executor():
    """run_build_worker --noop --exit-when-idle completes every queued build and reports what it did."""
    license = LicenseFactory(tier="asp")
    for _ in range(30):
        BuildFactory(license=license)
    out = StringIO()
    call_command("run_build_worker", "--concurrency", "3", "--noop", "--exit-when-idle", stdout=out)
    assert _statuses() == ["succeeded"] * 30
    assert "completed 30" in out.getvalue()
    assert BuildResult.objects.filter(status="succeeded").count() == 30


def test_the_simulated_executor_reports_stages_attaches_an_sbom_and_keeps_a_log():
    """A simulated build walks through its stages (stage events), attaches an SBOM, leaves its log and records
    its queue wait and run time, all through the SQL API."""
    build = BuildFactory()
    worker = Worker(executor=SimulatedExecutor(stage_seconds=0.01), exit_when_idle=True, reap_interval=0)
    worker.run()
    build.refresh_from_db()
    assert build.status == "succeeded" and build.progress == 100
    assert build.image_digest.startswith("sha256:")
    stages = BuildEvent.objects.filter(build_id=build.pk, event_type="stage").values_list("message", flat=True)
    assert list(stages) == list(SimulatedExecutor.STAGES)
    sbom = BuildArtifact.objects.get(build=build)
    assert (sbom.kind, sbom.media_type) == ("sbom", "application/spdx+json")
    assert "[compile]\n" in selectors.build_log_text(build)
    metrics = dict(BuildMetric.objects.filter(build_id=build.pk).values_list("name", "unit"))
    assert metrics == {"queue_wait_seconds": "s", "run_seconds": "s"}
    run = BuildMetric.objects.get(build_id=build.pk, name="run_seconds").value
    assert run >= 0.01 * len(SimulatedExecutor.STAGES)


def test_an_idle_worker_is_woken_by_notify_not_by_polling():
    """A build enqueued while the worker idles (30 s poll) is claimed within a second, thanks to LISTEN."""
    license = LicenseFactory()
    worker = Worker(executor=SimulatedExecutor(noop=True), poll_interval=30, reap_interval=0)
    thread = start_worker(worker)
    try:
        time.sleep(0.5)  # the worker is idle and listening
        build = services.build_enqueue(customer=license.customer, manifest={"base": "alpine"})
        started = time.monotonic()
        assert _wait_for(lambda: Build.objects.get(pk=build.pk).status == "succeeded", timeout=5)
        assert time.monotonic() - started < 1.5
    finally:
        worker.request_stop(immediately=True)
        thread.join(10)


def test_cancelling_a_running_build_stops_the_worker_on_it():
    """The worker's next progress report after a cancel request returns false; it stops and the build is
    cancelled."""
    build = BuildFactory()
    worker = Worker(executor=SimulatedExecutor(stage_seconds=0.2), poll_interval=0.2, reap_interval=0)
    thread = start_worker(worker)
    try:
        assert _wait_for(lambda: Build.objects.get(pk=build.pk).status == "running")
        assert services.build_cancel(build=build) == "cancel_requested"
        assert _wait_for(lambda: Build.objects.get(pk=build.pk).status == "cancelled", timeout=5)
        assert _wait_for(lambda: worker.counts["lost"] == 1, timeout=5)
    finally:
        worker.request_stop(immediately=True)
        thread.join(10)


def test_the_worker_rescues_builds_of_a_dead_worker_within_seconds():
    """A build whose worker stopped heartbeating is requeued by a running worker's reaper, not an hourly job."""
    build = BuildFactory()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM get_next_build_for_worker('dead-worker')")
    Build.objects.filter(pk=build.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=5))
    worker = Worker(executor=SimulatedExecutor(noop=True), poll_interval=0.2, reap_interval=0.5)
    thread = start_worker(worker)
    try:
        assert _wait_for(lambda: Build.objects.get(pk=build.pk).retry_count == 1, timeout=10)
    finally:
        worker.request_stop(immediately=True)
        thread.join(10)
    assert BuildEvent.objects.filter(build_id=build.pk, event_type="requeued").exists()


def test_the_command_executor_streams_output_progress_and_image():
    """A command template's output goes to the build's log; its ::progress and ::image lines are honoured."""
    build = BuildFactory()
    digest = "sha256:" + "e" * 64
    script = (
        "import sys; print('hello from', sys.argv[1]); print('::progress 50 compile'); "
        f"print('::image registry.example/app:1 {digest}')"
    )
    template = f'{sys.executable} -c "{script}" {{build_id}}'
    Worker(executor=CommandExecutor(template), exit_when_idle=True, reap_interval=0).run()
    build.refresh_from_db()
    assert (build.status, build.image_reference, build.image_digest) == ("succeeded", "registry.example/app:1", digest)
    assert f"hello from {build.pk}" in selectors.build_log_text(build)
    assert BuildEvent.objects.filter(build_id=build.pk, event_type="stage", message="compile").exists()


def test_a_failing_command_fails_the_build_with_its_exit_status():
    """A non-zero exit fails the build, naming the status."""
    build = BuildFactory()
    Worker(executor=CommandExecutor(f"{sys.executable} -c 'raise SystemExit(3)'"), exit_when_idle=True).run()
    build.refresh_from_db()
    assert (build.status, build.error_message) == ("failed", "build command exited with status 3")


def _worker_process(db_url, *args):
    return start_manage("run_build_worker", *args, env={"DATABASE_URL": db_url})


def test_sigterm_mid_build_hands_running_builds_back_and_loses_nothing(db_url):
    """SIGTERM while builds run: after the grace period they go back to the queue (no retry spent), the queued
    one is untouched, nothing is left running, and the worker exits 0."""
    license = LicenseFactory(tier="enterprise")
    builds = [BuildFactory(license=license) for _ in range(3)]
    process = _worker_process(db_url, "--concurrency", "2", "--stage-seconds", "30", "--grace", "0.5")
    try:
        assert _wait_for(lambda: Build.objects.filter(status="running").count() == 2, timeout=30)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "released 2" in out
    assert _statuses() == ["queued"] * 3
    assert Build.objects.filter(retry_count=0, worker_id__isnull=True).count() == 3
    assert BuildEvent.objects.filter(event_type="released").count() == 2
    assert {b.pk for b in builds} == set(Build.objects.values_list("pk", flat=True))


def test_sigterm_lets_running_builds_finish_within_the_grace_period(db_url):
    """SIGTERM with a long enough grace period: the running build completes, nothing new is claimed."""
    license = LicenseFactory(tier="core")
    first, second = BuildFactory(license=license), BuildFactory(license=license)
    process = _worker_process(db_url, "--stage-seconds", "0.3", "--grace", "20")
    try:
        assert _wait_for(lambda: Build.objects.get(pk=first.pk).status == "running", timeout=30)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert Build.objects.get(pk=first.pk).status == "succeeded"
    assert Build.objects.get(pk=second.pk).status == "queued"


def test_the_worker_can_skip_waiting_for_the_wal_flush():
    """With synchronous_commit off (opt-in), the worker's sessions say so and it still completes every build."""
    license = LicenseFactory(tier="asp")
    for _ in range(10):
        BuildFactory(license=license)
    settings_seen = []
    executor = SimulatedExecutor(noop=True)

    def checking(ctx):
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            settings_seen.append(cursor.fetchone()[0])
        return executor(ctx)

    Worker(executor=checking, concurrency=2, exit_when_idle=True, reap_interval=0, synchronous_commit=False).run()
    assert _statuses() == ["succeeded"] * 10
    assert set(settings_seen) == {"off"}


def test_one_batch_claim_feeds_every_idle_slot():
    """A slot woken while three others idle claims four builds with one claim_builds call; each slot runs one."""
    worker = Worker(executor=SimulatedExecutor(stage_seconds=0.01), concurrency=4, poll_interval=30, reap_interval=0)
    thread = start_worker(worker)
    try:
        assert _wait_for(lambda: worker._idle_slots == 4)
        license = LicenseFactory(tier="asp")
        builds = [BuildFactory(license=license) for _ in range(4)]  # inserted directly: no notification
        with worker.wake:
            worker.wake.notify()  # wake exactly one slot
        assert _wait_for(lambda: Build.objects.filter(status="succeeded").count() == 4)
    finally:
        worker.request_stop(immediately=True)
        thread.join(30)
    claimed = BuildEvent.objects.filter(build_id__in=[b.pk for b in builds], event_type="claimed")
    assert claimed.count() == 4
    assert len({event.worker_id for event in claimed}) == 1  # one slot's batch
    assert len({event.created_at for event in claimed}) == 1  # one transaction
    assert set(Build.objects.values_list("worker_id", flat=True)) == {claimed[0].worker_id}


def test_output_is_streamed_in_chunks_of_at_most_64_kib_and_read_back_exactly(monkeypatch):
    """Lines reach build_logs while the build runs (not only at the end); a line longer than a chunk is split on
    character boundaries, and the log reads back byte for byte."""
    monkeypatch.setattr("builds.queue.worker.LOG_FLUSH_SECONDS", 0)
    build = BuildFactory()
    seen = threading.Event()
    long_line = "é" * 50_000  # 100,000 bytes: two chunks

    def executor(ctx):
        ctx.log("first")
        seen.wait(10)
        ctx.log(long_line)
        ctx.log("last")
        return Outcome(True, image_reference="registry.example/app:1", image_digest="sha256:" + "d" * 64)

    worker = Worker(executor=executor, exit_when_idle=True, reap_interval=0)
    thread = start_worker(worker)
    try:
        assert _wait_for(lambda: selectors.build_log_text(build) == "first\n", timeout=10), "streamed while running"
        assert Build.objects.get(pk=build.pk).status == "running"
        seen.set()
        thread.join(20)
    finally:
        seen.set()
    assert selectors.build_log_text(build) == f"first\n{long_line}\nlast\n"
    sizes = [
        len(chunk.encode()) for chunk in BuildLogChunk.objects.filter(build_id=build.pk).values_list("chunk", flat=True)
    ]
    assert max(sizes) <= 65536 and len(sizes) >= 3


def test_an_executor_whose_build_was_taken_away_is_stopped_by_its_next_output(monkeypatch):
    """When output is refused with HN302 (the build now runs elsewhere), the executor is told to stop, nothing more
    is written, and the worker counts the build as lost without completing it."""
    monkeypatch.setattr("builds.queue.worker.LOG_FLUSH_SECONDS", 0)
    build = BuildFactory()
    taken = threading.Event()
    told_to_stop = []

    def executor(ctx):
        ctx.log("mine")
        taken.wait(10)
        ctx.log("not mine any more")
        told_to_stop.append(ctx.stop.is_set())
        return Outcome(True, image_reference="registry.example/app:1", image_digest="sha256:" + "d" * 64)

    worker = Worker(executor=executor, exit_when_idle=True, reap_interval=0)
    thread = start_worker(worker)
    try:
        assert _wait_for(lambda: selectors.build_log_text(build) == "mine\n", timeout=10)
        Build.objects.filter(pk=build.pk).update(worker_id="another-worker/0")
        taken.set()
        thread.join(20)
    finally:
        taken.set()
    assert told_to_stop == [True] and worker.counts["lost"] == 1
    assert selectors.build_log_text(build) == "mine\n"
    build.refresh_from_db()
    assert (build.status, build.worker_id) == ("running", "another-worker/0")
    assert not BuildMetric.objects.filter(build_id=build.pk).exists()
