"""Extractors: turn a message's text into intents and requirements.

An extractor implements ``Extractor.extract(text) -> ExtractionResult``; ``get_extractor()`` returns the one named
by ``settings.HONUA_INTAKE_EXTRACTOR``. The built-in ``RuleBasedExtractor`` needs no network (the demo and tests use
it); an LLM-backed extractor can implement the same interface and be configured instead.

Requirement values are normalised so the manifest mapping (``intake.manifests``) is deterministic:

| type | value | example |
| --- | --- | --- |
| ``language`` | ``name`` or ``name version`` | ``python 3.12`` |
| ``base_image`` | an image reference | ``ubuntu:24.04`` |
| ``package`` | a package name, lower case | ``gdal`` |
| ``architecture`` | ``amd64``, ``arm64``, ``arm/v7``, ``ppc64le``, ``s390x``, ``riscv64`` | ``arm64`` |
| ``registry`` | ``ecr``, ``gcr``, ``acr``, ``ghcr``, ``dockerhub``, ``quay``, ``harbor`` or a registry host | ``ecr`` |
| ``env`` | ``KEY=value`` | ``GDAL_DATA=/usr/share/gdal`` |
| ``port`` | a TCP port 1..65535 | ``8080`` |
| ``other`` | free text kept for a person to read | |
"""

import dataclasses
import re
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclasses.dataclass(frozen=True)
class DetectedIntent:
    intent: str  # one of intake.models.INTENTS
    confidence: Decimal
    entities: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DetectedRequirement:
    requirement_type: str  # one of intake.models.REQUIREMENT_TYPES
    value: str
    confidence: Decimal


@dataclasses.dataclass(frozen=True)
class ExtractionResult:
    intents: list[DetectedIntent]
    requirements: list[DetectedRequirement]


class Extractor(Protocol):
    def extract(self, text: str) -> ExtractionResult:
        """Intents and requirements found in ``text`` (a user's message)."""
        ...


def get_extractor() -> Extractor:
    """The configured extractor (``settings.HONUA_INTAKE_EXTRACTOR``)."""
    return import_string(settings.HONUA_INTAKE_EXTRACTOR)()


HIGH = Decimal("0.950")
MEDIUM = Decimal("0.800")
LOW = Decimal("0.600")

ARCHITECTURES = {
    "amd64": "amd64",
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x64": "amd64",
    "intel": "amd64",
    "arm64": "arm64",
    "aarch64": "arm64",
    "graviton": "arm64",
    "apple silicon": "arm64",
    "armv7": "arm/v7",
    "arm/v7": "arm/v7",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
REGISTRIES = {
    "ecr": "ecr",
    "elastic container registry": "ecr",
    "gcr": "gcr",
    "artifact registry": "gcr",
    "acr": "acr",
    "azure container registry": "acr",
    "ghcr": "ghcr",
    "github container registry": "ghcr",
    "github packages": "ghcr",
    "docker hub": "dockerhub",
    "dockerhub": "dockerhub",
    "quay": "quay",
    "harbor": "harbor",
}
LANGUAGES = {
    "python": "python",
    "node": "node",
    "nodejs": "node",
    "node.js": "node",
    "go": "go",
    "golang": "go",
    "java": "java",
    "ruby": "ruby",
    "rust": "rust",
    "php": "php",
    "r": "r",
}
# Words that end a "with ..." package list or are never packages.
_STOP_WORDS = {"a", "an", "the", "my", "some", "support", "and", "plus", "also", "it", "image", "container"}

_ARCH_RE = re.compile(
    r"(?<![\w/])(" + "|".join(re.escape(a) for a in sorted(ARCHITECTURES, key=len, reverse=True)) + r")(?![\w/])", re.I
)
_REGISTRY_RE = re.compile(
    r"\b(" + "|".join(re.escape(r) for r in sorted(REGISTRIES, key=len, reverse=True)) + r")\b", re.I
)
_REGISTRY_HOST_RE = re.compile(
    r"\b(?:push(?:ed)?|publish(?:ed)?|upload(?:ed)?)\s+(?:it\s+)?to\s+([a-z0-9.-]+\.[a-z]{2,}(?::\d+)?(?:/[\w./-]+)?)",
    re.I,
)
_LANGUAGE_RE = re.compile(
    r"(?<![\w.])(python|node\.js|nodejs|node|golang|go|java|ruby|rust|php)(?:\s*v?([0-9]+(?:\.[0-9]+){0,2}))?(?![\w])",
    re.I,
)
_BASE_IMAGE_RE = re.compile(
    r"\b(?:based on|base image(?: is|:)?|from|on top of|on)\s+((?:[a-z0-9.-]+/)*[a-z0-9._-]+(?::[\w.-]+)?)", re.I
)
_KNOWN_BASES = {"ubuntu", "debian", "alpine", "fedora", "rockylinux", "almalinux", "amazonlinux", "distroless"}
_PACKAGES_RE = re.compile(r"\b(?:with|install(?:ing)?|plus|add(?:ing)?|including)\s+([^.;:!?]+)", re.I)
_CLAUSE_END_RE = re.compile(r"\b(?:for|on|push|pushed|to|in|from|based|targeting|exposing|expose|port)\b|,", re.I)
_ENV_RE = re.compile(r"\b([A-Z][A-Z0-9_]*)=(\S+)")
_PORT_RE = re.compile(r"\b(?:port|expose|exposing|listen(?:s|ing)? on)\s+(?:port\s+)?(\d{1,5})\b", re.I)

_INTENT_RULES: list[tuple[str, Decimal, re.Pattern]] = [
    ("cancel", HIGH, re.compile(r"\b(cancel|abort|stop the build|never ?mind)\b", re.I)),
    (
        "status",
        MEDIUM,
        re.compile(r"\b(status|progress|is it (done|ready)|where is my (build|image)|finished yet)\b", re.I),
    ),
    (
        "modify_build",
        MEDIUM,
        re.compile(
            r"\b(instead|actually|change|switch|also add|remove|drop|update the (manifest|build)|rather)\b", re.I
        ),
    ),
    ("new_build", HIGH, re.compile(r"\b(build|make|create|need|want|set up|give me)\b.*\b(image|container)\b", re.I)),
    ("new_build", MEDIUM, re.compile(r"\b(build|make|create|need|want|push)\b", re.I)),
    ("question", MEDIUM, re.compile(r"(\?\s*$)|^\s*(how|what|why|which|can|does|is|do)\b", re.I)),
]


class RuleBasedExtractor:
    """Regular-expression rules: no network, deterministic, good enough for the demo and the tests.

    Intents: the first rule that matches wins (cancel, status, modify, new build, question), else ``other``.
    """

    def extract(self, text: str) -> ExtractionResult:
        requirements = self._requirements(text)
        intents = self._intents(text, requirements)
        return ExtractionResult(intents=intents, requirements=requirements)

    def _intents(self, text: str, requirements: list[DetectedRequirement]) -> list[DetectedIntent]:
        entities: dict[str, list[str]] = {}
        for requirement in requirements:
            entities.setdefault(requirement.requirement_type, []).append(requirement.value)
        for intent, confidence, pattern in _INTENT_RULES:
            if pattern.search(text):
                return [DetectedIntent(intent, confidence, entities)]
        if requirements:  # requirements with no verb still describe a build
            return [DetectedIntent("new_build", LOW, entities)]
        return [DetectedIntent("other", LOW, entities)]

    def _requirements(self, text: str) -> list[DetectedRequirement]:
        found: list[DetectedRequirement] = []
        seen: set[tuple[str, str]] = set()

        def add(requirement_type: str, value: str, confidence: Decimal) -> None:
            if (requirement_type, value) not in seen:
                seen.add((requirement_type, value))
                found.append(DetectedRequirement(requirement_type, value, confidence))

        base_images = []
        for match in _BASE_IMAGE_RE.finditer(text):
            image = match.group(1).lower()
            name = image.split("/")[-1].split(":")[0]
            if name in _KNOWN_BASES or ":" in image:
                base_images.append(image)
                add("base_image", image, HIGH if ":" in image else MEDIUM)

        for match in _LANGUAGE_RE.finditer(text):
            word = match.group(1).lower()
            if word == "go" and not match.group(2):
                continue  # "go" is too often just a verb
            language = LANGUAGES[word]
            version = match.group(2)
            add("language", f"{language} {version}" if version else language, HIGH if version else MEDIUM)

        arch_spans = []
        for match in _ARCH_RE.finditer(text):
            arch_spans.append(match.span())
            add("architecture", ARCHITECTURES[match.group(1).lower()], HIGH)

        registry_words = set()
        for match in _REGISTRY_RE.finditer(text):
            registry_words.add(match.group(1).lower())
            add("registry", REGISTRIES[match.group(1).lower()], HIGH)
        for match in _REGISTRY_HOST_RE.finditer(text):
            add("registry", match.group(1).lower(), MEDIUM)

        for match in _ENV_RE.finditer(text):
            add("env", f"{match.group(1)}={match.group(2).rstrip(',')}", HIGH)

        for match in _PORT_RE.finditer(text):
            port = int(match.group(1))
            if 1 <= port <= 65535:
                add("port", str(port), HIGH)

        for match in _PACKAGES_RE.finditer(text):
            for package in self._package_list(match.group(1), registry_words):
                add("package", package, MEDIUM)
        return found

    @staticmethod
    def _package_list(clause: str, registry_words: set[str]) -> list[str]:
        """Package names in a "with gdal and numpy for arm64, push to ..." clause (up to for/on/push/to/in/,)."""
        clause = _CLAUSE_END_RE.split(clause, maxsplit=1)[0]
        packages = []
        for word in re.split(r"\s+|\band\b|&|\+", clause):
            word = word.strip().lower().strip("'\"`()")
            if (
                not word
                or word in _STOP_WORDS
                or word in ARCHITECTURES
                or word in registry_words
                or word in LANGUAGES
                or "=" in word
                or not re.fullmatch(r"[a-z0-9][a-z0-9._+-]*", word)
                or re.fullmatch(r"\d+(\.\d+)*", word)
            ):
                continue
            packages.append(word)
        return packages
