"""The manifest schema v1 and the deterministic mapping from requirements (golden examples)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.extractors import RuleBasedExtractor
from intake.manifests import (
    Credential,
    ManifestInvalid,
    Requirement,
    manifest_from_requirements,
    manifest_hash,
    validate_manifest,
)

ECR = Credential(id="5d1c0c36-1111-4222-8333-944445555666", registry_type="ecr", registry_url="123.dkr.ecr.aws/team")


def _from_text(*texts, credentials=()):
    requirements = [
        Requirement(found.requirement_type, found.value)
        for text in texts
        for found in RuleBasedExtractor().extract(text).requirements
    ]
    return manifest_from_requirements(requirements, credentials=credentials)


GOLDEN = [
    (
        ["python 3.12 with gdal for arm64 and amd64, push to my ECR"],
        [ECR],
        {
            "schema_version": 1,
            "base_image": "python:3.12-slim",
            "language": {"name": "python", "version": "3.12"},
            "packages": ["gdal"],
            "architectures": ["amd64", "arm64"],
            "registry": {"type": "ecr", "url": "123.dkr.ecr.aws/team", "registry_credential_id": ECR.id},
            "env": {},
            "ports": [],
        },
    ),
    (
        ["python 3.12 with gdal for arm64 and amd64, push to my ECR"],
        [],
        {
            "schema_version": 1,
            "base_image": "python:3.12-slim",
            "language": {"name": "python", "version": "3.12"},
            "packages": ["gdal"],
            "architectures": ["amd64", "arm64"],
            "registry": {"type": "ecr", "url": None, "registry_credential_id": None},
            "env": {},
            "ports": [],
        },
    ),
    (
        [
            "I need a node image based on debian:bookworm-slim exposing port 3000 with NODE_ENV=production",
            "Actually make it node 20 and also add port 9090, with LOG_LEVEL=debug",
        ],
        [],
        {
            "schema_version": 1,
            "base_image": "debian:bookworm-slim",
            "language": {"name": "node", "version": "20"},
            "packages": [],
            "architectures": ["amd64"],
            "registry": None,
            "env": {"LOG_LEVEL": "debug", "NODE_ENV": "production"},
            "ports": [3000, 9090],
        },
    ),
    (
        ["Build me a Go 1.22 service on alpine:3.20 with git and curl for aarch64, push to ghcr"],
        [],
        {
            "schema_version": 1,
            "base_image": "alpine:3.20",
            "language": {"name": "go", "version": "1.22"},
            "packages": ["curl", "git"],
            "architectures": ["arm64"],
            "registry": {"type": "ghcr", "url": None, "registry_credential_id": None},
            "env": {},
            "ports": [],
        },
    ),
    (
        ["an image with curl"],
        [],
        {
            "schema_version": 1,
            "base_image": "debian:bookworm-slim",
            "language": None,
            "packages": ["curl"],
            "architectures": ["amd64"],
            "registry": None,
            "env": {},
            "ports": [],
        },
    ),
]


@pytest.mark.parametrize(("texts", "credentials", "expected"), GOLDEN)
def test_golden_manifests_from_text(texts, credentials, expected):
    """Plain text through the rule-based extractor and the mapping gives exactly the documented manifest."""
    manifest = _from_text(*texts, credentials=credentials)
    assert manifest == expected
    validate_manifest(manifest)


def test_mapping_is_deterministic_and_order_independent_for_sets():
    """Lists come out sorted and unique, so the same requirements in another order hash the same."""
    a = [Requirement("package", "numpy"), Requirement("package", "gdal"), Requirement("architecture", "x86_64")]
    b = [Requirement("architecture", "amd64"), Requirement("package", "gdal"), Requirement("package", "numpy")]
    assert manifest_from_requirements(a) == manifest_from_requirements(b)
    assert manifest_hash(manifest_from_requirements(a)) == manifest_hash(manifest_from_requirements(b))


def test_latest_single_valued_requirement_wins():
    """For language, base image and registry a later requirement replaces an earlier one; env keys likewise; a
    later mention of the same language without a version keeps the version given before."""
    manifest = manifest_from_requirements(
        [
            Requirement("language", "python 3.11"),
            Requirement("env", "A=1"),
            Requirement("language", "python"),
            Requirement("env", "A=2"),
        ]
    )
    assert manifest["language"] == {"name": "python", "version": "3.11"}
    assert manifest["base_image"] == "python:3.11-slim"
    assert manifest_from_requirements([Requirement("language", "python")])["language"]["version"] == "3.12"
    assert manifest["env"] == {"A": "2"}


def test_unmappable_values_become_comments_outside_the_hash():
    """An unknown architecture or port and 'other' requirements go to comments, which the hash ignores."""
    manifest = manifest_from_requirements(
        [Requirement("architecture", "mips"), Requirement("port", "70000"), Requirement("other", "keep it small")]
    )
    assert manifest["comments"] == ["unmapped architecture: mips", "unmapped port: 70000", "keep it small"]
    assert manifest["architectures"] == ["amd64"]
    validate_manifest(manifest)
    without = {k: v for k, v in manifest.items() if k != "comments"}
    assert manifest_hash(manifest) == manifest_hash(without)


def test_generic_registry_host_matches_a_credential_by_url():
    """A registry named by host uses the customer's credential whose URL starts with it."""
    credential = Credential(id="c1", registry_type="harbor", registry_url="https://registry.example.com/team")
    manifest = manifest_from_requirements([Requirement("registry", "registry.example.com")], credentials=[credential])
    assert manifest["registry"] == {
        "type": "harbor",
        "url": "https://registry.example.com/team",
        "registry_credential_id": "c1",
    }


def _valid():
    return _from_text("python 3.12 with gdal for arm64 and amd64, push to my ECR", credentials=[ECR])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: m.pop("architectures"), "missing architectures"),
        (lambda m: m.update(extra=1), "unknown key(s) extra"),
        (lambda m: m.update(schema_version=2), "schema_version must be 1"),
        (lambda m: m.update(base_image="Not An Image!"), "base_image must be an image reference"),
        (lambda m: m.update(architectures=[]), "at least one platform"),
        (lambda m: m.update(architectures=["arm64", "amd64"]), "architectures must be sorted"),
        (lambda m: m.update(architectures=["amd64", "mips"]), "unknown architecture(s) mips"),
        (lambda m: m.update(packages="gdal"), "packages must be a list of strings"),
        (lambda m: m.update(ports=[0]), "ports must be between 1 and 65535"),
        (lambda m: m.update(ports=[True]), "ports must be a list of integers"),
        (lambda m: m.update(env={"lower": "x"}), "env key(s) lower"),
        (lambda m: m.update(registry={"type": "ftp", "url": None, "registry_credential_id": None}), "registry type"),
        (lambda m: m.update(language={"name": "python"}), "language must be null"),
        (lambda m: m.update(comments="x"), "comments must be a list"),
    ],
)
def test_schema_validation_names_the_reason(change, reason):
    """Each departure from schema v1 is refused with a message naming it."""
    manifest = _valid()
    change(manifest)
    with pytest.raises(ManifestInvalid) as info:
        validate_manifest(manifest)
    assert reason in str(info.value)


def test_schema_refuses_non_objects():
    """A manifest must be a JSON object."""
    with pytest.raises(ManifestInvalid, match="must be a JSON object"):
        validate_manifest(["python"])


_TYPES = ["base_image", "language", "package", "architecture", "registry", "env", "port", "other"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_TYPES), st.text(min_size=1, max_size=40).filter(lambda v: v.strip())), max_size=12
    )
)
def test_any_requirements_map_to_a_valid_manifest(pairs):
    """Whatever the extractions say, the mapping yields a manifest that passes the schema (odd values -> comments)."""
    validate_manifest(manifest_from_requirements([Requirement(kind, value) for kind, value in pairs]))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_extractor_output_is_always_well_formed(text):
    """On any text the rule-based extractor returns one known intent and known requirement types, confidences in
    0..1, and its requirements map to a valid manifest."""
    result = RuleBasedExtractor().extract(text)
    assert len(result.intents) == 1
    assert result.intents[0].intent in {"new_build", "modify_build", "question", "status", "cancel", "other"}
    assert all(r.requirement_type in _TYPES and r.value.strip() for r in result.requirements)
    assert all(0 <= found.confidence <= 1 for found in [*result.intents, *result.requirements])
    validate_manifest(
        manifest_from_requirements([Requirement(r.requirement_type, r.value) for r in result.requirements])
    )
