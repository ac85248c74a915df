"""The rule-based extractor: intents and normalised requirements from plain text, no network."""

import dataclasses
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from intake.evaluation import evaluate, load_cases
from intake.extractors import (
    DetectedRequirement,
    ExtractionResult,
    RuleBasedExtractor,
    Turn,
    V1ExtractorAdapter,
    as_conversation_extractor,
    get_extractor,
)
from intake.manifests import MIN_CONFIDENCE, Requirement, fold_requirements


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


# -- issue 17: each failure a new user met, pinned ------------------------------------------------------------


def _added(text, kind=None):
    return sorted(
        r.value
        for r in RuleBasedExtractor().extract(text).requirements
        if r.action != "remove" and r.confidence >= MIN_CONFIDENCE and (kind is None or r.requirement_type == kind)
    )


def _state(*turns):
    """The requirements a conversation of user ``turns`` ends with, as the manifest mapping folds them."""
    extractor, requirements, seen = RuleBasedExtractor(), [], []
    for index, text in enumerate(turns):
        seen.append(Turn("user", text))
        for r in extractor.extract_conversation(seen).requirements:
            if r.confidence >= MIN_CONFIDENCE:
                requirements.append(Requirement(r.requirement_type, r.value, r.action, source=index))
    state = {}
    for r in fold_requirements(requirements):
        state.setdefault(r.requirement_type, []).append(r.value)
    return {kind: sorted(values) for kind, values in state.items()}


def test_prose_and_bullet_lists_give_every_package():
    """A comma does not end a list, and bullet lists count."""
    assert _added("numpy, pandas and scikit-learn please", "package") == ["numpy", "pandas", "scikit-learn"]
    assert _added("python 3.12 with numpy, pandas and scikit-learn", "package") == ["numpy", "pandas", "scikit-learn"]
    assert _added("Packages:\n- numpy\n- scipy\n* jupyterlab\n1. polars", "package") == [
        "jupyterlab",
        "numpy",
        "polars",
        "scipy",
    ]


def test_stop_words_are_never_packages():
    """Words of the request ('so', 'bundle', 'install', 'latest', 'client', 'tools'...) are not packages."""
    assert _added("ruby 3.3 so bundle install can compile the pg gem", "package") == ["pg"]
    assert _added("install the latest stable postgres client tools", "package") == ["postgresql-client"]


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        (["please no arm64 support"], {}),
        (["don't push to ECR, use ghcr"], {"registry": ["ghcr"]}),
        (["use ghcr instead of docker hub"], {"registry": ["ghcr"]}),
        (["push to ecr", "don't push anywhere"], {}),
        (["python 3.12 with numpy but without pandas"], {"language": ["python 3.12"], "package": ["numpy"]}),
    ],
)
def test_negations_remove_rather_than_add(turns, expected):
    """'no', "don't", 'instead of', 'without' take a value away instead of adding it."""
    assert _state(*turns) == expected


@pytest.mark.parametrize(
    ("text", "image"),
    [
        ("Ubuntu 22.04 base with curl", "ubuntu:22.04"),
        ("debian bookworm with git", "debian:bookworm"),
        ("alpine-based image with nginx", "alpine"),
        ("FROM python:3.12-slim", "python:3.12-slim"),
        ("rockylinux 9 with httpd", "rockylinux:9"),
    ],
)
def test_distros_without_a_lead_word(text, image):
    """A distro name, with or without its version, is a base image wherever it is written."""
    assert _added(text, "base_image") == [image]


def test_language_versus_package():
    """'python3-pip' and 'node-gyp' are packages; 'node-gyp' does not override 'node 20'."""
    text = "node 20 with node-gyp and python3-pip for native modules"
    assert _added(text, "language") == ["node 20"]
    assert _added(text, "package") == ["node-gyp", "python3-pip"]
    assert _added("python3 with pip-tools", "language") == ["python 3"]


@pytest.mark.parametrize(
    ("text", "kind", "values"),
    [
        ("platforms linux/amd64 and linux/arm64", "architecture", ["amd64", "arm64"]),
        ("x86 only", "architecture", ["amd64"]),
        ("a multi-arch image please", "architecture", ["amd64", "arm64"]),
        ("expose ports 80, 443 and 8443", "port", ["443", "80", "8443"]),
        ("the service listens on 8080; metrics on 9100", "port", ["8080", "9100"]),
        (
            "our registry is harbor.internal.acme.net:8443/platform",
            "registry",
            ["harbor.internal.acme.net:8443/platform"],
        ),
        ("save it in ghcr.io/acme", "registry", ["ghcr.io/acme"]),
    ],
)
def test_architectures_ports_and_registry_hosts_anywhere(text, kind, values):
    """linux/arm64, x86, multi-arch, several ports and registry hosts are found wherever they are written."""
    assert _added(text, kind) == values


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        (
            ["python 3.12 with gdal and proj for arm64 and amd64", "actually make it arm64 only... and drop proj"],
            {"architecture": ["arm64"], "language": ["python 3.12"], "package": ["gdal"]},
        ),
        (["node 18 api exposing port 8080", "port 9090 not 8080"], {"language": ["node 18"], "port": ["9090"]}),
        (["python 3.11 with pandas", "actually use 3.12"], {"language": ["python 3.12"], "package": ["pandas"]}),
        (
            ["alpine with curl", "use debian bookworm instead of alpine"],
            {"base_image": ["debian:bookworm"], "package": ["curl"]},
        ),
        (["python 3.12 with flask", "swap flask for fastapi"], {"language": ["python 3.12"], "package": ["fastapi"]}),
        (["expose 8080 please", "no ports, it's a worker"], {}),
        (["set LOG_LEVEL=debug and TZ=UTC", "drop LOG_LEVEL"], {"env": ["TZ=UTC"]}),
    ],
)
def test_later_turns_correct_earlier_ones(turns, expected):
    """'only', 'drop', 'not', 'instead of', 'swap', 'no ports' in a later turn correct what an earlier one said."""
    assert _state(*turns) == expected


def test_assistant_question_explains_a_bare_answer():
    """'21' answers 'Which Java version?'; 'both' answers 'Which architectures?'."""
    extractor = RuleBasedExtractor()
    result = extractor.extract_conversation(
        [Turn("user", "java image please"), Turn("assistant", "Which Java version?"), Turn("user", "21")]
    )
    assert [(r.requirement_type, r.value) for r in result.requirements] == [("language", "java 21")]
    result = extractor.extract_conversation(
        [Turn("user", "go 1.22"), Turn("assistant", "Which architectures?"), Turn("user", "both")]
    )
    assert sorted(r.value for r in result.requirements) == ["amd64", "arm64"]


def test_confidence_separates_right_from_wrong():
    """On the evaluation set, findings under MIN_CONFIDENCE are mostly wrong and those above mostly right."""
    calibration = evaluate(RuleBasedExtractor(), load_cases()).calibration()
    under = [calibration[level] for level in calibration if level < MIN_CONFIDENCE]
    above = [calibration[level] for level in calibration if level >= MIN_CONFIDENCE]
    assert sum(right for _, right in under) / sum(n for n, _ in under) < 0.5
    assert sum(right for _, right in above) / sum(n for n, _ in above) >= 0.9


# -- the interface, versioned ---------------------------------------------------------------------------------


class OldStyleExtractor:
    """An extractor written for interface version 1."""

    def extract(self, text):
        return ExtractionResult(intents=[], requirements=[DetectedRequirement("package", text.split()[-1], Decimal(1))])


class NotAnExtractor:
    pass


class FutureExtractor:
    interface_version = 3

    def extract_conversation(self, turns):
        raise AssertionError("never called")


def test_version_one_extractor_is_adapted():
    """A version-1 extractor keeps working: it reads the last user turn, and what it finds is added."""
    adapted = as_conversation_extractor(OldStyleExtractor())
    assert isinstance(adapted, V1ExtractorAdapter)
    result = adapted.extract_conversation(
        [Turn("user", "with numpy"), Turn("assistant", "ok"), Turn("user", "and scipy")]
    )
    assert [(r.value, r.action) for r in result.requirements] == [("scipy", "add")]


@pytest.mark.parametrize(
    ("extractor", "message"),
    [(NotAnExtractor(), "implement extract_conversation"), (FutureExtractor(), "declares interface_version 3")],
)
def test_unusable_extractor_fails_clearly(extractor, message):
    """A class with neither interface, or a version this code does not know, is refused with a clear message."""
    with pytest.raises(ImproperlyConfigured, match=message):
        as_conversation_extractor(extractor)


@override_settings(HONUA_INTAKE_EXTRACTOR="tests.intake.test_extractors.OldStyleExtractor")
def test_configured_version_one_extractor_is_adapted():
    """get_extractor() adapts a configured version-1 class."""
    assert isinstance(get_extractor(), V1ExtractorAdapter)


class OwnClassesExtractor:
    """A version-1 extractor that returns its own result classes (as the seed's callers could)."""

    @dataclasses.dataclass(frozen=True)
    class Found:
        requirement_type: str
        value: str
        confidence: float

    @dataclasses.dataclass(frozen=True)
    class Result:
        intents: list
        requirements: list

    def extract(self, text):
        return self.Result(intents=[], requirements=[self.Found("port", "8080", 0.9)])


def test_version_one_extractor_with_its_own_classes_is_adapted():
    """The adapter rebuilds what a version-1 extractor returns, whatever classes it used."""
    result = as_conversation_extractor(OwnClassesExtractor()).extract_conversation([Turn("user", "port 8080")])
    assert [(r.requirement_type, r.value, r.confidence, r.action) for r in result.requirements] == [
        ("port", "8080", Decimal("0.9"), "add")
    ]
