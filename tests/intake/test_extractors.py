"""The rule-based extractor: intents and normalised requirements from plain text, no network."""

from decimal import Decimal

import pytest
from django.test import override_settings

from intake.extractors import RuleBasedExtractor, get_extractor


def _requirements(text):
    return [(r.requirement_type, r.value) for r in RuleBasedExtractor().extract(text).requirements]


def _intent(text):
    (intent,) = RuleBasedExtractor().extract(text).intents
    return intent


def test_issue_example():
    """'python 3.12 with gdal for arm64 and amd64, push to my ECR' gives language, package, both archs, ECR."""
    assert sorted(_requirements("python 3.12 with gdal for arm64 and amd64, push to my ECR")) == [
        ("architecture", "amd64"),
        ("architecture", "arm64"),
        ("language", "python 3.12"),
        ("package", "gdal"),
        ("registry", "ecr"),
    ]
    intent = _intent("python 3.12 with gdal for arm64 and amd64, push to my ECR")
    assert intent.intent == "new_build"
    assert intent.entities["architecture"] == ["arm64", "amd64"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x86_64 and aarch64 please", [("architecture", "amd64"), ("architecture", "arm64")]),
        ("based on ubuntu:24.04", [("base_image", "ubuntu:24.04")]),
        ("expose port 8080", [("port", "8080")]),
        ("set GDAL_DATA=/usr/share/gdal", [("env", "GDAL_DATA=/usr/share/gdal")]),
        ("push it to registry.example.com/team", [("registry", "registry.example.com/team")]),
        ("let's go", []),
        ("install numpy and pandas", [("package", "numpy"), ("package", "pandas")]),
    ],
)
def test_requirement_rules(text, expected):
    """Each rule finds its requirement and normalises its value."""
    assert _requirements(text) == expected


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("please cancel that build", "cancel"),
        ("what's the status of my build?", "status"),
        ("actually switch to python 3.11", "modify_build"),
        ("I want a container with ffmpeg", "new_build"),
        ("how do registries work?", "question"),
        ("hello", "other"),
    ],
)
def test_intent_rules(text, intent):
    """The first matching rule decides the intent; confidence is between 0 and 1."""
    found = _intent(text)
    assert found.intent == intent
    assert Decimal(0) <= found.confidence <= Decimal(1)


@override_settings(HONUA_INTAKE_EXTRACTOR="intake.extractors.RuleBasedExtractor")
def test_configured_extractor_is_loaded_by_path():
    """get_extractor() builds the class named in settings."""
    assert isinstance(get_extractor(), RuleBasedExtractor)
