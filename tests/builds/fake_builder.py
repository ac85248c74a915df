#!/usr/bin/env python3
"""A stand-in for ``buildctl build`` / ``docker buildx build`` in tests: reads the Dockerfile, prints BuildKit-style
plain progress, writes ``--metadata-file`` with ``containerimage.digest`` like they do, and can misbehave.

    fake_builder.py build --file DOCKERFILE --tag NAME --metadata-file FILE [--platform P] [--sbom-file F] CONTEXT

``FAKE_BUILDER_MODE``: ``ok`` (default), ``fail`` (exit 1), ``no-digest`` (no metadata file), ``hang`` (sleeps
after its first step until terminated), ``hang-ignore-term`` (the same, ignoring SIGTERM: only SIGKILL stops it).
``FAKE_BUILDER_PIDFILE``: write the process id there (so a test can check it is gone).
"""

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--file", "-f", required=True)
    parser.add_argument("--tag", "-t", required=True)
    parser.add_argument("--metadata-file", required=True)
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--sbom-file")
    parser.add_argument("context")
    args = parser.parse_args()
    mode = os.environ.get("FAKE_BUILDER_MODE", "ok")
    if pidfile := os.environ.get("FAKE_BUILDER_PIDFILE"):
        Path(pidfile).write_text(str(os.getpid()))
    if mode == "hang-ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    dockerfile = Path(args.file).read_text()
    steps = [line for line in dockerfile.splitlines() if line.split(" ", 1)[0] in {"FROM", "ENV", "RUN", "EXPOSE"}]
    print("#1 [internal] load build definition from Dockerfile", flush=True)
    print(f"#1 transferring dockerfile: {len(dockerfile)}B done", flush=True)
    for number, step in enumerate(steps, start=1):
        print(f"#{number + 1} [{number}/{len(steps)}] {step}", flush=True)
        if mode.startswith("hang"):
            while True:
                time.sleep(0.1)
        print(f"#{number + 1} DONE 0.0s", flush=True)
    print(f"::metric layers {len(steps)} count", flush=True)
    if mode == "fail":
        print("ERROR: failed to solve: process did not complete successfully: exit code: 1", flush=True)
        return 1
    digest = "sha256:" + hashlib.sha256(f"{dockerfile}{args.tag}{args.platform}".encode()).hexdigest()
    if mode != "no-digest":
        metadata = {
            "containerimage.digest": digest,
            "image.name": args.tag,
            "containerimage.descriptor": {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest,
                "size": 1609,
            },
        }
        Path(args.metadata_file).write_text(json.dumps(metadata))
    if args.sbom_file:
        sbom = {"spdxVersion": "SPDX-2.3", "name": args.tag, "packages": []}
        Path(args.sbom_file).write_text(json.dumps(sbom))
    print(f"#{len(steps) + 2} exporting to image", flush=True)
    print(f"#{len(steps) + 2} naming to {args.tag} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
