"""Build executors for the reference worker: what actually builds an image.

An executor is a callable ``run(ctx: BuildContext) -> Outcome``. It reports progress through ``ctx.progress``
(which also heartbeats), writes its output with ``ctx.log``, attaches artifacts with ``ctx.artifact``, and returns
promptly once ``ctx.stop`` is set (the build was cancelled, lost, or the worker is shutting down).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol


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
        self, *, kind: str, uri: str, media_type: str, content: bytes, metadata: dict | None = None
    ) -> None: ...


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


class CommandExecutor:
    """Runs a command template per build (e.g. ``docker buildx build ...`` or ``buildctl build ...``), streaming its
    output into the build's log. Placeholders, filled into each argument after splitting (no shell): ``{build_id}``,
    ``{manifest_path}`` (the manifest as a JSON file), ``{manifest_hash}``, ``{image}`` (a suggested reference) and
    ``{workdir}``. The command reports with lines on its output: ``::progress N [stage]`` and
    ``::image REFERENCE sha256:DIGEST``; exit status 0 with an image line is a success."""

    def __init__(self, template: str, *, terminate_grace: float = 10.0):
        self.argv_template = shlex.split(template)
        if not self.argv_template:
            raise ValueError("the command template is empty")
        self.terminate_grace = terminate_grace

    def __call__(self, ctx: BuildContext) -> Outcome:
        build = ctx.build
        with tempfile.TemporaryDirectory(prefix=f"honua-build-{build.id}-") as workdir:
            manifest_path = Path(workdir) / "manifest.json"
            manifest_path.write_text(json.dumps(build.manifest, sort_keys=True, indent=2))
            values = {
                "build_id": str(build.id),
                "manifest_path": str(manifest_path),
                "manifest_hash": build.manifest_hash,
                "image": image_for(build),
                "workdir": workdir,
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
                    bufsize=1,
                    env={**os.environ, "HONUA_BUILD_ID": str(build.id)},
                )
            except OSError as exc:
                return Outcome(False, error=f"could not start the build command: {exc}")
            with process:
                watcher = threading.Thread(target=self._terminate_on_stop, args=(ctx, process), daemon=True)
                watcher.start()
                image = digest = None
                assert process.stdout is not None
                for raw in process.stdout:
                    line = raw.rstrip("\n")
                    ctx.log(line)
                    if match := PROGRESS_LINE.match(line):
                        if not ctx.progress(min(int(match.group(1)), 100), match.group(2)):
                            ctx.stop.set()
                    elif match := IMAGE_LINE.match(line):
                        image, digest = match.groups()
                returncode = process.wait()
        if returncode != 0:
            return Outcome(False, error=f"build command exited with status {returncode}")
        if not digest:
            return Outcome(False, error="build command reported no image (print '::image REFERENCE sha256:DIGEST')")
        return Outcome(True, image_reference=image, image_digest=digest)

    def _terminate_on_stop(self, ctx: BuildContext, process: subprocess.Popen) -> None:
        while process.poll() is None:
            if ctx.stop.wait(0.2):
                process.terminate()
                try:
                    process.wait(self.terminate_grace)
                except subprocess.TimeoutExpired:
                    process.kill()
                return
