"""Render a build manifest (schema v1, intake/manifests.py and docs/manifest.schema.json) as a Dockerfile.

Deterministic: the same manifest always gives the same bytes (keys and lists in a fixed order, no timestamps), so
a build is reproducible from its manifest and the rendering can be pinned by golden files
(tests/builds/golden/). The rules:

- ``FROM base_image`` (one stage).
- ``env``: one ``ENV`` line per variable, sorted by name, values double-quoted with ``\\``, ``"`` and ``$``
  escaped (no variable expansion).
- ``packages``, installed in one ``RUN`` by the language's package manager when there is one (python: ``pip``,
  node: ``npm --global``, ruby: ``gem``), else the base image's (``apk`` for Alpine images, else ``apt-get``).
  Each package name is shell-quoted.
- ``ports``: one ``EXPOSE`` line, in order.
- Labels: the manifest hash and the language, so an image says what it was built from.
- ``architectures`` are not part of the Dockerfile: :func:`platforms` gives the builder's ``--platform`` value.

Only ``schema_version`` 1 is rendered; anything else raises :class:`RenderError` (an ``InvalidManifest``, HN002).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from builds.cache.services import manifest_hash
from honua import errors

HEADER = "# syntax=docker/dockerfile:1\n# Rendered by Honua from a schema-v1 build manifest; do not edit.\n"
_IMAGE_RE = re.compile(
    r"(?:[a-z0-9.-]+(?::[0-9]+)?/)*[a-z0-9._-]+(?::[A-Za-z0-9_.-]{1,128})?(?:@sha256:[0-9a-f]{64})?", re.ASCII
)
_ENV_KEY_RE = re.compile(r"[A-Z_][A-Z0-9_]*", re.ASCII)
_PACKAGE_RE = re.compile(r"[A-Za-z0-9@][A-Za-z0-9._+:=<>~@/\[\],-]*", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
LANGUAGE_INSTALLERS = {
    "python": "pip install --no-cache-dir {packages}",
    "node": "npm install --global {packages}",
    "ruby": "gem install --no-document {packages}",
}
APK_INSTALL = "apk add --no-cache {packages}"
APT_INSTALL = "apt-get update && apt-get install -y --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"


class RenderError(errors.InvalidManifest):
    """The manifest cannot be rendered as a Dockerfile; the message says why."""


def _env_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def render_dockerfile(manifest: Mapping[str, Any]) -> str:
    """The Dockerfile of a schema-v1 manifest (text ending in a newline)."""
    if not isinstance(manifest, Mapping) or manifest.get("schema_version") != 1:
        raise RenderError("only schema_version 1 manifests can be rendered as a Dockerfile")
    base = manifest.get("base_image")
    if not isinstance(base, str) or not _IMAGE_RE.fullmatch(base):
        raise RenderError("base_image must be an image reference such as python:3.12-slim")
    language = manifest.get("language") or None
    lines = [HEADER, f"FROM {base}", ""]
    lines.append(f'LABEL org.honua.manifest-hash="{manifest_hash(dict(manifest))}"')
    if language:
        name, version = language.get("name"), language.get("version")
        if not all(isinstance(v, str) and _PACKAGE_RE.fullmatch(v) for v in (name, version)):
            raise RenderError('language must be {"name": ..., "version": ...} with plain names')
        lines.append(f'LABEL org.honua.language="{name} {version}"')
    env = manifest.get("env") or {}
    if not isinstance(env, Mapping):
        raise RenderError("env must be an object of KEY: value strings")
    for key in sorted(env):
        value = env[key]
        if not _ENV_KEY_RE.fullmatch(key) or not isinstance(value, str) or _CONTROL_RE.search(value):
            raise RenderError(f"env {key!r} must match [A-Z_][A-Z0-9_]* with a one-line string value")
        lines.append(f"ENV {key}={_env_value(value)}")
    packages = manifest.get("packages") or []
    if not isinstance(packages, list) or not all(isinstance(p, str) and _PACKAGE_RE.fullmatch(p) for p in packages):
        raise RenderError("packages must be a list of package names (letters, digits and ._+:=<>~@/[],-)")
    if packages:
        template = LANGUAGE_INSTALLERS.get(language["name"]) if language else None
        if template is None:
            template = APK_INSTALL if "alpine" in base else APT_INSTALL
        lines.append("RUN " + template.format(packages=" ".join(shlex.quote(p) for p in sorted(set(packages)))))
    ports = manifest.get("ports") or []
    if not isinstance(ports, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports
    ):
        raise RenderError("ports must be a list of integers from 1 to 65535")
    if ports:
        lines.append("EXPOSE " + " ".join(str(p) for p in sorted(set(ports))))
    return "\n".join(lines) + "\n"


def platforms(manifest: Mapping[str, Any]) -> str:
    """The builder's ``--platform`` value for the manifest's architectures (``linux/amd64,linux/arm64``)."""
    archs = manifest.get("architectures") if isinstance(manifest, Mapping) else None
    if isinstance(archs, str):
        archs = [archs]
    if not archs:
        archs = ["amd64"]
    return ",".join(f"linux/{arch.strip().lower()}" for arch in sorted(set(archs)))
