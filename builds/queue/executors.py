"""Build executors for the reference worker: what actually builds an image.

An executor is a callable ``run(ctx: BuildContext) -> Outcome``. It reports progress through ``ctx.progress``
(which also heartbeats), writes its output with ``ctx.log``, attaches artifacts with ``ctx.artifact``, and returns
promptly once ``ctx.stop`` is set (the build was cancelled, lost, or the worker is shutting down).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from builds.queue.dockerfile import RenderError, platforms, render_dockerfile
from honua import errors


@dataclasses.dataclass(frozen=True)
class ClaimedBuild:
    id: Any
    customer_id: Any
    license_id: Any
    manifest: dict
    manifest_hash: str
    priority: int
    retry_count: int
    heartbeat_timeout_seconds: int
    # What the build is entitled to produce, fixed at enqueue (build_queue.entitled_outputs): "sbom", "signing".
    entitled_outputs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Outcome:
    succeeded: bool
    image_reference: str | None = None
    image_digest: str | None = None
    error: str | None = None


class BuildContext(Protocol):
    build: ClaimedBuild
    worker_id: str
    stop: threading.Event

    def progress(self, percent: int, stage: str | None = None) -> bool: ...

    def log(self, line: str) -> None: ...

    def artifact(
        self,
        *,
        kind: str,
        uri: str,
        media_type: str,
        content: bytes | None = None,
        digest: str | None = None,
        size_bytes: int | None = None,
        metadata: dict | None = None,
    ) -> int | None: ...

    def metric(self, name: str, value: float, unit: str = "") -> int | None: ...


def image_for(build: ClaimedBuild, registry: str = "registry.honua.local") -> str:
    return f"{registry}/{str(build.customer_id)[:8]}/{build.manifest_hash[:16]}:latest"


class SimulatedExecutor:
    """Pretends to build: walks through stages (reporting progress), then returns an image digest derived from the
    manifest and attaches exactly the outputs the build is entitled to (``build.entitled_outputs``): an SPDX SBOM
    for ``sbom``, a signature of the image digest for ``signing``, nothing else. ``stage_seconds=0`` with
    ``noop=True`` does no work at all (benchmarks)."""

    STAGES = ("resolve", "fetch base image", "install packages", "compile", "export image", "push")

    def __init__(self, *, stage_seconds: float = 0.5, noop: bool = False, stages: Sequence[str] = STAGES):
        self.stage_seconds = stage_seconds
        self.noop = noop
        self.stages = tuple(stages)

    def __call__(self, ctx: BuildContext) -> Outcome:
        build = ctx.build
        if not self.noop:
            for index, stage in enumerate(self.stages):
                if not ctx.progress(int(100 * index / len(self.stages)), stage):
                    return Outcome(False, error="stopped")
                ctx.log(f"[{stage}]")
                if ctx.stop.wait(self.stage_seconds):
                    return Outcome(False, error="stopped")
        digest = "sha256:" + hashlib.sha256(f"{build.manifest_hash}:{build.id}".encode()).hexdigest()
        image = image_for(build)
        if not self.noop:
            repository = image.rsplit(":", 1)[0]
            if "sbom" in build.entitled_outputs:
                sbom = {
                    "spdxVersion": "SPDX-2.3",
                    "name": image,
                    "packages": [{"name": str(name)} for name in build.manifest.get("packages", [])],
                }
                ctx.artifact(
                    kind="sbom",
                    uri=f"{repository}@{digest}.sbom.spdx.json",
                    media_type="application/spdx+json",
                    content=json.dumps(sbom, sort_keys=True).encode(),
                )
            if "signing" in build.entitled_outputs:
                # A cosign-style simple signing payload naming the image digest (simulated: no key signs it).
                payload = {
                    "critical": {
                        "identity": {"docker-reference": repository},
                        "image": {"docker-manifest-digest": digest},
                        "type": "cosign container image signature",
                    },
                    "optional": {"builder": "honua simulated executor"},
                }
                ctx.artifact(
                    kind="signature",
                    uri=f"{repository}:{digest.replace(':', '-')}.sig",
                    media_type="application/vnd.dev.cosign.simplesigning.v1+json",
                    content=json.dumps(payload, sort_keys=True).encode(),
                )
        return Outcome(True, image_reference=image, image_digest=digest)


PROGRESS_LINE = re.compile(r"^::progress\s+(\d{1,3})(?:\s+(.*))?$")
IMAGE_LINE = re.compile(r"^::image\s+(\S+)\s+(sha256:[0-9a-f]{64})\s*$")
METRIC_LINE = re.compile(r"^::metric\s+([a-z][a-z0-9_.]{0,99})\s+(\S+)(?:\s+(\S{1,32}))?\s*$")
# BuildKit's plain progress (buildctl --progress plain, docker buildx --progress plain): "#7 [2/4] RUN ..." or
# "#7 [linux/arm64 2/4] RUN ...".
BUILDKIT_STEP = re.compile(r"^#\d+ \[(?:\S+ )?(\d+)/(\d+)\] (.{1,200})")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
DEFAULT_IMAGE_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"


def read_builder_metadata(path: Path) -> dict:
    """The JSON object BuildKit (``buildctl --metadata-file``) or ``docker buildx --metadata-file`` wrote, or {}."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _sbom_media_type(content: bytes) -> str | None:
    try:
        document = json.loads(content)
    except ValueError:
        return None
    if isinstance(document, dict) and "spdxVersion" in document:
        return "application/spdx+json"
    if isinstance(document, dict) and document.get("bomFormat") == "CycloneDX":
        return "application/vnd.cyclonedx+json"
    return None


class CommandExecutor:
    """Runs a real builder per build (``buildctl build ...`` or ``docker buildx build ...``; README, "Build
    workers"), streaming its output into the build's log (``append_build_log``).

    Per build it makes a work directory with ``manifest.json`` and a build context holding the ``Dockerfile``
    rendered from the manifest (``builds.queue.dockerfile``). Placeholders, filled into each argument after splitting
    (no shell): ``{dockerfile}``, ``{context}``, ``{metadata_file}`` (where the builder writes its metadata JSON),
    ``{platforms}`` (``linux/amd64,...`` from the manifest's architectures), ``{image}`` (a suggested reference),
    ``{sbom_file}`` (an SPDX or CycloneDX JSON the command may write), ``{build_id}``, ``{manifest_path}``,
    ``{manifest_hash}`` and ``{workdir}``.

    Success is exit status 0 and an image digest: ``containerimage.digest`` from the metadata file (its
    ``image.name`` is the reference, else ``{image}``), or a ``::image REFERENCE sha256:DIGEST`` line. The image is
    attached as an ``image`` artifact and an SBOM written to ``{sbom_file}`` as an ``sbom`` artifact. Progress comes
    from BuildKit's plain steps (``#7 [2/4] RUN ...``) or ``::progress N [stage]`` lines; ``::metric NAME VALUE
    [UNIT]`` lines become metrics.

    The command runs in its own process group. When the build is stopped (cancelled, lost, worker shutting down)
    or runs past ``timeout`` seconds, the group gets SIGTERM, then SIGKILL after ``terminate_grace`` seconds.
    """

    def __init__(self, template: str, *, timeout: float = 3600.0, terminate_grace: float = 10.0):
        self.argv_template = shlex.split(template)
        if not self.argv_template:
            raise ValueError("the command template is empty")
        if timeout <= 0 or terminate_grace < 0:
            raise ValueError("the timeout must be positive and the grace period zero or more")
        self.uses_dockerfile = any(
            f"{{{name}}}" in part for part in self.argv_template for name in ("dockerfile", "context")
        )
        self.timeout = timeout
        self.terminate_grace = terminate_grace

    def __call__(self, ctx: BuildContext) -> Outcome:
        build = ctx.build
        with tempfile.TemporaryDirectory(prefix=f"honua-build-{build.id}-") as workdir:
            work = Path(workdir)
            context = work / "context"
            context.mkdir()
            manifest_path = work / "manifest.json"
            manifest_path.write_text(json.dumps(build.manifest, sort_keys=True, indent=2))
            dockerfile = context / "Dockerfile"
            try:
                dockerfile.write_text(render_dockerfile(build.manifest))
            except RenderError as exc:
                if self.uses_dockerfile:
                    return Outcome(False, error=f"the manifest cannot be rendered as a Dockerfile: {exc}")
            metadata_file, sbom_file = work / "metadata.json", work / "sbom.json"
            values = {
                "build_id": str(build.id),
                "manifest_path": str(manifest_path),
                "manifest_hash": build.manifest_hash,
                "image": image_for(build),
                "workdir": workdir,
                "dockerfile": str(dockerfile),
                "context": str(context),
                "metadata_file": str(metadata_file),
                "sbom_file": str(sbom_file),
                "platforms": platforms(build.manifest),
            }
            argv = [part.format(**values) for part in self.argv_template]
            ctx.log("$ " + shlex.join(argv))
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    bufsize=1,
                    start_new_session=True,
                    env={**os.environ, "HONUA_BUILD_ID": str(build.id)},
                )
            except OSError as exc:
                return Outcome(False, error=f"could not start the build command: {exc}")
            stopped: list[str] = []
            with process:
                watcher = threading.Thread(target=self._watch, args=(ctx, process, stopped), daemon=True)
                watcher.start()
                image, digest = self._read_output(ctx, process)
                returncode = process.wait()
                watcher.join()
            if stopped:
                return Outcome(False, error=stopped[0])
            if returncode != 0:
                return Outcome(False, error=f"build command exited with status {returncode}")
            metadata = read_builder_metadata(metadata_file)
            if isinstance(metadata.get("containerimage.digest"), str):
                digest = metadata["containerimage.digest"]
                names = str(metadata.get("image.name") or "").split(",")
                image = names[0].strip() or values["image"]
            if not digest:
                return Outcome(
                    False,
                    error="the builder reported no image digest (containerimage.digest in {metadata_file}, "
                    "or a '::image REFERENCE sha256:DIGEST' line)",
                )
            if not DIGEST.fullmatch(digest):
                return Outcome(False, error=f"the builder reported a malformed image digest {digest[:100]!r}")
            image = image or values["image"]
            self._attach_outputs(ctx, image, digest, metadata, sbom_file)
        return Outcome(True, image_reference=image, image_digest=digest)

    def _read_output(self, ctx: BuildContext, process: subprocess.Popen) -> tuple[str | None, str | None]:
        image = digest = None
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            ctx.log(line)
            if match := BUILDKIT_STEP.match(line):
                done, total, stage = int(match.group(1)), int(match.group(2)), match.group(3)
                if total and not ctx.progress(min(99, int(100 * (done - 1) / total)), stage):
                    ctx.stop.set()
            elif match := PROGRESS_LINE.match(line):
                if not ctx.progress(min(int(match.group(1)), 100), match.group(2)):
                    ctx.stop.set()
            elif match := IMAGE_LINE.match(line):
                image, digest = match.groups()
            elif match := METRIC_LINE.match(line):
                self._metric(ctx, *match.groups())
        return image, digest

    @staticmethod
    def _metric(ctx: BuildContext, name: str, value: str, unit: str | None) -> None:
        try:
            number = float(value)
            ctx.metric(name, number, unit or "")
        except (ValueError, errors.InvalidArgument) as exc:
            ctx.log(f"ignored metric {name}: {exc}")

    @staticmethod
    def _attach_outputs(ctx: BuildContext, image: str, digest: str, metadata: dict, sbom_file: Path) -> None:
        descriptor = metadata.get("containerimage.descriptor")
        descriptor = descriptor if isinstance(descriptor, dict) else {}
        size = descriptor.get("size")
        ctx.artifact(
            kind="image",
            uri=f"{image.split('@', 1)[0]}@{digest}",
            media_type=str(descriptor.get("mediaType") or DEFAULT_IMAGE_MEDIA_TYPE),
            digest=digest,
            size_bytes=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0,
            metadata={"platforms": platforms(ctx.build.manifest)},
        )
        if sbom_file.is_file():
            content = sbom_file.read_bytes()
            media_type = _sbom_media_type(content)
            if media_type is None:
                ctx.log("not attached: the SBOM file is neither SPDX nor CycloneDX JSON")
                return
            ctx.artifact(
                kind="sbom",
                uri=f"{image.split('@', 1)[0]}@{digest}.sbom.json",
                media_type=media_type,
                content=content,
            )

    def _watch(self, ctx: BuildContext, process: subprocess.Popen, stopped: list[str]) -> None:
        """Stop the command when the build is stopped or past its timeout: SIGTERM, then SIGKILL."""
        deadline = time.monotonic() + self.timeout
        while process.poll() is None:
            if ctx.stop.wait(0.1):
                stopped.append("stopped: the build was cancelled or handed back")
            elif time.monotonic() >= deadline:
                stopped.append(f"build command timed out after {self.timeout:g} s")
            else:
                continue
            ctx.log(f"{stopped[0]}; terminating the build command")
            self.terminate(process)
            try:
                process.wait(self.terminate_grace)
            except subprocess.TimeoutExpired:
                ctx.log(f"the build command did not stop within {self.terminate_grace:g} s; killing it")
                self.kill(process)
            return

    @staticmethod
    def terminate(process: subprocess.Popen) -> None:
        """SIGTERM to the command's process group (the builder and anything it started)."""
        _signal_group(process, signal.SIGTERM)

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        """SIGKILL to the command's process group."""
        _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
