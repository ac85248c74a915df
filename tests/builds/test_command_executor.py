"""The command executor with a builder that behaves like buildctl / docker buildx (tests/builds/fake_builder.py):
the rendered Dockerfile, the digest from the metadata file, output streamed through append_build_log, image and SBOM
artifacts, metrics, and its own timeout and cancellation (SIGTERM, then SIGKILL)."""

import json
import os
import sys
import threading
import time

import pytest

from builds.models import Build, BuildArtifact, BuildEvent, BuildMetric
from builds.queue import selectors, services
from builds.queue.executors import CommandExecutor
from builds.queue.worker import Worker
from tests.builds.factories import BuildFactory
from tests.conftest import PROJECT_ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FAKE = PROJECT_ROOT / "tests" / "builds" / "fake_builder.py"
MANIFEST = json.loads((PROJECT_ROOT / "tests" / "builds" / "golden" / "python-web.json").read_text())
# docker buildx's shape: build --file ... --tag ... --metadata-file ... --platform ... CONTEXT
TEMPLATE = (
    f"{sys.executable} {FAKE} build --file {{dockerfile}} --tag {{image}} --platform {{platforms}} "
    "--metadata-file {metadata_file} --sbom-file {sbom_file} {context}"
)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purposes
        return stat.read().split()[2] != "Z"


@pytest.fixture
def mode(monkeypatch):
    def set_mode(value):
        monkeypatch.setenv("FAKE_BUILDER_MODE", value)

    return set_mode


def _run(executor, **worker_kwargs):
    worker = Worker(executor=executor, exit_when_idle=True, reap_interval=0, **worker_kwargs)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def test_a_build_uses_the_rendered_dockerfile_and_the_digest_from_the_metadata_file(mode):
    """The builder gets the rendered Dockerfile; the image reference and digest come from its metadata file; the
    image and the SBOM are attached; output, progress steps and its metrics are recorded through the SQL API."""
    mode("ok")
    build = BuildFactory(manifest=MANIFEST)
    Worker(executor=CommandExecutor(TEMPLATE), exit_when_idle=True, reap_interval=0).run()
    build.refresh_from_db()
    assert build.status == "succeeded", build.error_message
    metadata_digest = build.image_digest
    assert metadata_digest.startswith("sha256:") and build.image_reference.endswith(":latest")
    image = BuildArtifact.objects.get(build=build, kind="image")
    assert (image.uri, image.sha256, image.size_bytes) == (
        build.image_reference + "@" + metadata_digest,
        metadata_digest[7:],
        1609,
    )
    assert image.media_type == "application/vnd.oci.image.index.v1+json"
    assert image.metadata == {"platforms": "linux/amd64,linux/arm64"}
    sbom = BuildArtifact.objects.get(build=build, kind="sbom")
    assert sbom.media_type == "application/spdx+json"
    log = selectors.build_log_text(build)
    assert "#1 [internal] load build definition from Dockerfile" in log
    assert "RUN pip install --no-cache-dir flask gunicorn 'psycopg[binary]'" in log
    stages = list(BuildEvent.objects.filter(build_id=build.pk, event_type="stage").values_list("message", flat=True))
    assert stages[0] == "FROM python:3.12-slim" and len(stages) == 5
    assert BuildMetric.objects.get(build_id=build.pk, name="layers").value == 5


def test_a_builder_that_fails_or_reports_no_digest_fails_the_build(mode):
    """A non-zero exit fails the build with its status; a success without containerimage.digest fails too."""
    mode("fail")
    failing = BuildFactory(manifest=MANIFEST)
    Worker(executor=CommandExecutor(TEMPLATE), exit_when_idle=True, reap_interval=0).run()
    failing.refresh_from_db()
    assert (failing.status, failing.error_message) == ("failed", "build command exited with status 1")
    mode("no-digest")
    silent = BuildFactory(manifest={**MANIFEST, "ports": [8001]})
    Worker(executor=CommandExecutor(TEMPLATE), exit_when_idle=True, reap_interval=0).run()
    silent.refresh_from_db()
    assert silent.status == "failed" and "containerimage.digest" in silent.error_message
    assert not BuildArtifact.objects.filter(build__in=[failing, silent]).exists()


def test_a_manifest_that_cannot_be_rendered_fails_without_running_the_builder(tmp_path, monkeypatch):
    """A manifest that is not schema v1 fails the build before the builder starts."""
    monkeypatch.setenv("FAKE_BUILDER_PIDFILE", str(tmp_path / "pid"))
    build = BuildFactory(manifest={"base": "python:3.12-slim"})
    Worker(executor=CommandExecutor(TEMPLATE), exit_when_idle=True, reap_interval=0).run()
    build.refresh_from_db()
    assert build.status == "failed" and "cannot be rendered" in build.error_message
    assert not (tmp_path / "pid").exists()


def test_cancelling_a_command_build_terminates_the_builder(mode, tmp_path, monkeypatch):
    """A cancel request reaches the command through the heartbeat: SIGTERM stops the builder at once (long
    before the kill grace), and the build ends cancelled."""
    mode("hang")
    monkeypatch.setenv("FAKE_BUILDER_PIDFILE", str(tmp_path / "pid"))
    build = BuildFactory(manifest=MANIFEST)
    executor = CommandExecutor(TEMPLATE, terminate_grace=30)
    worker, thread = _run(executor, heartbeat_interval=0.2)
    try:
        assert wait_for(lambda: (tmp_path / "pid").exists() and Build.objects.get(pk=build.pk).status == "running", 20)
        pid = int((tmp_path / "pid").read_text())
        services.build_cancel(build=build, reason="test")
        started = time.monotonic()
        assert wait_for(lambda: not _alive(pid), 10), "SIGTERM stopped the builder"
        assert time.monotonic() - started < 10
        assert wait_for(lambda: Build.objects.get(pk=build.pk).status == "cancelled", 10)
    finally:
        worker.request_stop(immediately=True)
        thread.join(40)


def test_a_builder_past_its_timeout_that_ignores_sigterm_is_killed(mode, tmp_path, monkeypatch):
    """The executor's own timeout: SIGTERM, then SIGKILL after the grace period for a builder that ignores
    SIGTERM; the build fails naming the timeout."""
    mode("hang-ignore-term")
    monkeypatch.setenv("FAKE_BUILDER_PIDFILE", str(tmp_path / "pid"))
    build = BuildFactory(manifest=MANIFEST)
    worker, thread = _run(CommandExecutor(TEMPLATE, timeout=1, terminate_grace=1))
    try:
        assert wait_for(lambda: (tmp_path / "pid").exists(), 20)
        pid = int((tmp_path / "pid").read_text())
        assert wait_for(lambda: not _alive(pid), 15), "SIGKILL stopped the builder"
        assert wait_for(lambda: Build.objects.get(pk=build.pk).status == "failed", 10)
    finally:
        worker.request_stop(immediately=True)
        thread.join(20)
    build.refresh_from_db()
    assert build.error_message == "build command timed out after 1 s"
    log = selectors.build_log_text(build)
    assert "terminating the build command" in log and "killing it" in log
