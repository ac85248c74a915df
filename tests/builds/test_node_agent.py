"""A second-language agent (examples/node-agent, Node.js with `pg`, written only against docs/sql-api.md) drains the
queue beside the Python worker: every build ends exactly once, and the Node agent's builds carry an artifact, a log
line and a metric added through the SQL API."""

import shutil
import subprocess
import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build, BuildArtifact, BuildEvent, BuildLogChunk, BuildMetric, BuildResult
from builds.queue import services
from builds.queue.executors import Outcome, image_for
from builds.queue.worker import Worker
from tests.builds.factories import BuildFactory
from tests.conftest import PROJECT_ROOT, subprocess_env, wait_for
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db(transaction=True)

AGENT_DIR = PROJECT_ROOT / "examples" / "node-agent"
BUILDS = 300
FAILING = 20
SLOW = 4


@pytest.fixture(scope="session")
def node_agent():
    """The agent's directory with its pinned dependencies installed (`npm ci`, as `make install` does)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Node.js agent test")
    if not (AGENT_DIR / "node_modules" / "pg").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=AGENT_DIR, check=True, timeout=300)
    return AGENT_DIR


def _start_agent(agent_dir, db_url, worker_id, **env):
    full_env = subprocess_env({"DATABASE_URL": db_url, "WORKER_ID": worker_id, "CONCURRENCY": "3", **env})
    return subprocess.Popen(
        ["node", "agent.js"], cwd=agent_dir, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _python_executor(ctx):
    """Honours the same `simulate` instructions as the Node agent, heartbeating while it waits."""
    simulate = ctx.build.manifest.get("simulate") or {}
    ctx.log(f"python worker building {ctx.build.id}")
    deadline = time.monotonic() + float(simulate.get("seconds", 0))
    while time.monotonic() < deadline:
        if not ctx.progress(50, "build") or ctx.stop.wait(0.1):
            return Outcome(False, error="stopped")
    if simulate.get("fail"):
        return Outcome(False, error=str(simulate["fail"]))
    ctx.metric("layers", 3)
    return Outcome(True, image_reference=image_for(ctx.build), image_digest="sha256:" + ctx.build.manifest_hash)


def test_node_agent_and_python_worker_drain_the_queue_each_build_ending_once(node_agent, db_url):
    """A few hundred builds (some failing, some cancelled while running) drained by a Node.js agent and the Python
    worker together: each ends once (one claim, one result), cancelled builds end cancelled, and every build the
    Node agent finished has an artifact, a log line and a metric."""
    licenses = [
        LicenseFactory(tier="enterprise", monthly_build_quota_override=1000, max_concurrent_builds_override=20)
        for _ in range(4)
    ]
    builds = []
    for n in range(BUILDS):
        simulate = {}
        if n < SLOW:
            simulate = {"seconds": 30}  # cancelled while running
        elif n % (BUILDS // FAILING) == 0:
            simulate = {"fail": f"simulated failure {n}"}
        builds.append(
            BuildFactory(
                license=licenses[n % 4], manifest={"n": n, "simulate": simulate}, priority=10 if n < SLOW else 5
            )
        )
    slow = builds[:SLOW]
    failing = {b.pk for b in builds if b.manifest["simulate"].get("fail")}
    connection.close()

    agent = _start_agent(node_agent, db_url, "node-1")
    worker = Worker(executor=_python_executor, concurrency=2, worker_id="py-1", poll_interval=0.2, reap_interval=0)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: Build.objects.filter(pk__in=[b.pk for b in slow], status="running").count() == SLOW, 60)
        for build in slow:
            assert services.build_cancel(build=build, reason="test") == "cancel_requested"
        done = Build.objects.filter(status__in=["succeeded", "failed", "cancelled", "timed_out"])
        assert wait_for(lambda: done.count() == BUILDS, 180), Counter(Build.objects.values_list("status", flat=True))
    finally:
        worker.request_stop(immediately=True)
        agent.terminate()
        out, err = agent.communicate(timeout=30)
        thread.join(30)
    assert agent.returncode == 0, err

    statuses = dict(Build.objects.values_list("id", "status"))
    assert all(statuses[b.pk] == "cancelled" for b in slow)
    assert {pk for pk, status in statuses.items() if status == "failed"} == failing
    assert Counter(statuses.values())["succeeded"] == BUILDS - SLOW - len(failing)

    claims = Counter(BuildEvent.objects.filter(event_type="claimed").values_list("build_id", flat=True))
    assert set(claims.values()) == {1}, "each build claimed exactly once"
    results = Counter(BuildResult.objects.values_list("build_id", flat=True))
    assert len(results) == BUILDS and set(results.values()) == {1}, "each build ends exactly once"

    by_worker = dict(Build.objects.values_list("id", "worker_id"))
    node_built = {pk for pk, worker_id in by_worker.items() if worker_id and worker_id.startswith("node-1/")}
    assert len(node_built) > 20 and len(node_built) < BUILDS - 20, "both agents took a share"
    node_succeeded = {pk for pk in node_built if statuses[pk] == "succeeded"}
    assert node_succeeded <= set(BuildArtifact.objects.filter(kind="report").values_list("build_id", flat=True))
    assert node_built - {b.pk for b in slow} <= set(BuildLogChunk.objects.values_list("build_id", flat=True))
    node_metrics = set(BuildMetric.objects.filter(name="run_seconds").values_list("build_id", flat=True))
    assert node_built - {b.pk for b in slow} <= node_metrics
    python_built = set(by_worker) - node_built
    assert python_built - {b.pk for b in slow} <= set(
        BuildMetric.objects.filter(name="queue_wait_seconds").values_list("build_id", flat=True)
    )
    assert '"completed"' in out


def test_a_fleet_of_node_agents_rescues_a_silent_build_without_python(node_agent, db_url):
    """The Node agent calls handle_build_timeouts itself: a build whose worker went silent is requeued (retry
    spent) with no Python worker running."""
    build = BuildFactory()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM get_next_build_for_worker('dead-worker/0')")
        cursor.execute("UPDATE build_queue SET heartbeat_at = now() - interval '10 minutes' WHERE id = %s", [build.pk])
    connection.close()
    agent = _start_agent(node_agent, db_url, "node-2", RESCUE_SECONDS="0.3", POLL_SECONDS="0.2")
    try:
        assert wait_for(lambda: Build.objects.get(pk=build.pk).retry_count == 1, 15)
    finally:
        agent.terminate()
        _out, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err
    assert Build.objects.get(pk=build.pk).status == "queued"  # claimable again after its retry backoff
    assert BuildEvent.objects.filter(build_id=build.pk, event_type="requeued").exists()


# The retryable failure of the SQL API (complete_build_v2 with 'retryable'); the agent's default, set here too so
# the test says what it exercises.
RETRYABLE_FAILURE_SQL = "SELECT complete_build_v2($1, $2, 'retryable', NULL, NULL, $3) <> 'not_held' AS held"


def test_node_agent_retryable_failure_is_retried_then_fails_for_good(node_agent, db_url):
    """A build the agent fails as retryable goes back to the queue with retry_count + 1 and ends `failed` once its
    retries are spent, with one result row per attempt."""
    build = BuildFactory(manifest={"simulate": {"retryable": "registry timeout"}}, max_retries=2)
    connection.close()
    agent = _start_agent(
        node_agent,
        db_url,
        "node-3",
        POLL_SECONDS="0.1",
        RESCUE_SECONDS="0",
        HONUA_RETRYABLE_FAILURE_SQL=RETRYABLE_FAILURE_SQL,
    )
    try:
        for _ in range(200):  # skip the retry backoff so the test does not wait minutes
            Build.objects.filter(pk=build.pk, status="queued").update(not_before=timezone.now())
            if Build.objects.get(pk=build.pk).status == "failed":
                break
            time.sleep(0.1)
    finally:
        agent.terminate()
        _out, err = agent.communicate(timeout=30)
    build.refresh_from_db()
    assert (build.status, build.retry_count) == ("failed", 2), err
    attempts = list(BuildResult.objects.filter(build=build).order_by("attempt").values_list("attempt", "status"))
    assert [attempt for attempt, _ in attempts] == [1, 2, 3] and attempts[-1][1] == "failed"
