"""Extractors: turn a conversation into intents and requirement changes.

Interface version 2 (``ConversationExtractor``): ``extract_conversation(turns) -> ExtractionResult`` sees the
conversation so far (``Turn``: role, content, message id) and returns the intents and requirements of its **last
user turn**, read in the light of the turns before (an answer to the assistant's question, a bare "3.12" that
corrects the Python version). Each requirement carries an ``action``: ``add``, ``remove`` ("drop proj", "no
arm64", "not 8080", "instead of docker hub") or ``replace`` ("arm64 only", "make it 8000 instead"); the manifest
mapping (``intake.manifests.fold_requirements``) applies them in order.

Interface version 1 (``Extractor``: ``extract(text)``, one message alone, every requirement an ``add``) keeps
working: ``get_extractor()`` wraps such a class in ``V1ExtractorAdapter``, which hands it the last user turn. A
class with neither method, or declaring an ``interface_version`` this code does not know, is refused with
``ImproperlyConfigured`` naming what it must implement.

``get_extractor()`` returns the one named by ``settings.HONUA_INTAKE_EXTRACTOR``. The built-in
``RuleBasedExtractor`` needs no network (the default; the demo and tests use it); ``intake.llm`` has the
LLM-backed ones.

Requirement values are normalised so the manifest mapping (``intake.manifests``) is deterministic:

| type | value | example |
| --- | --- | --- |
| ``language`` | ``name`` or ``name version`` | ``python 3.12`` |
| ``base_image`` | an image reference; a distro named in prose is ``name[:version]`` | ``ubuntu:24.04`` |
| ``package`` | a package name, lower case | ``gdal`` |
| ``architecture`` | ``amd64``, ``arm64``, ``arm/v7``, ``ppc64le``, ``s390x``, ``riscv64`` | ``arm64`` |
| ``registry`` | ``ecr``, ``gcr``, ``acr``, ``ghcr``, ``dockerhub``, ``quay``, ``harbor`` or a registry host | ``ecr`` |
| ``env`` | ``KEY=value`` (a removal: ``KEY``) | ``GDAL_DATA=/usr/share/gdal`` |
| ``port`` | a TCP port 1..65535 | ``8080`` |
| ``other`` | free text kept for a person to read | |

A removal's value may be ``*`` (every value of its type: "no ports", "don't push anywhere").

Confidence: a requirement under ``intake.manifests.MIN_CONFIDENCE`` (0.5) is not used unless a person confirms it.
The rule-based levels are calibrated on the evaluation set (``intake/evaluation/``; ``manage.py
evaluate_extractor --calibration`` prints precision per level): each rule's level is about the share of its
findings that were right there.
"""

import dataclasses
import difflib
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

INTERFACE_VERSION = 2
EXTRACTOR_INTERFACE = (
    "{path} is not an intake extractor: implement extract_conversation(turns) -> ExtractionResult "
    "(interface version 2) or extract(text) -> ExtractionResult (version 1, adapted)"
)
EXTRACTOR_VERSION = "{path} declares interface_version {version!r}; this Honua supports extractor interfaces 1 and 2"


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
    action: str = "add"  # one of intake.models.REQUIREMENT_ACTIONS


@dataclasses.dataclass(frozen=True)
class ExtractionResult:
    intents: list[DetectedIntent]
    requirements: list[DetectedRequirement]
    # What the extraction call itself cost (an LLM's tokens); None for extractors that call no model.
    usage: "ExtractionUsage | None" = None


@dataclasses.dataclass(frozen=True)
class ExtractionUsage:
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    fell_back: bool = False  # the model was unreachable and the rule-based extractor answered


@dataclasses.dataclass(frozen=True)
class Turn:
    role: str  # user, assistant, system, tool
    content: str
    message_id: int | None = None


class Extractor(Protocol):
    """Interface version 1: one message's text alone."""

    def extract(self, text: str) -> ExtractionResult: ...


class ConversationExtractor(Protocol):
    """Interface version 2: the conversation so far; the result is about its last user turn."""

    interface_version: ClassVar[int]

    def extract_conversation(self, turns: Sequence[Turn]) -> ExtractionResult: ...


class V1ExtractorAdapter:
    """A version-1 extractor behind the version-2 interface: it reads the last user turn alone, and every
    requirement it finds is an ``add`` (it cannot express corrections)."""

    interface_version = 2

    def __init__(self, extractor: Extractor):
        self.extractor = extractor

    def extract_conversation(self, turns: Sequence[Turn]) -> ExtractionResult:
        text = next((t.content for t in reversed(turns) if t.role == "user"), "")
        result = self.extractor.extract(text)
        return ExtractionResult(
            intents=[DetectedIntent(i.intent, Decimal(str(i.confidence)), dict(i.entities)) for i in result.intents],
            # Rebuilt rather than copied: a version-1 extractor may return its own classes (without ``action``).
            requirements=[
                DetectedRequirement(r.requirement_type, r.value, Decimal(str(r.confidence)), "add")
                for r in result.requirements
            ],
            usage=getattr(result, "usage", None),
        )


def as_conversation_extractor(extractor: object, *, path: str = "") -> ConversationExtractor:
    """``extractor`` behind interface version 2 (adapted from version 1), or ``ImproperlyConfigured``."""
    path = path or type(extractor).__qualname__
    version = getattr(extractor, "interface_version", None)
    if version not in (None, 1, 2):
        raise ImproperlyConfigured(EXTRACTOR_VERSION.format(path=path, version=version))
    if version != 1 and callable(getattr(extractor, "extract_conversation", None)):
        return extractor  # type: ignore[return-value]
    if callable(getattr(extractor, "extract", None)):
        return V1ExtractorAdapter(extractor)  # type: ignore[arg-type]
    raise ImproperlyConfigured(EXTRACTOR_INTERFACE.format(path=path))


def get_extractor() -> ConversationExtractor:
    """The configured extractor (``settings.HONUA_INTAKE_EXTRACTOR``), behind interface version 2."""
    path = settings.HONUA_INTAKE_EXTRACTOR
    return as_conversation_extractor(import_string(path)(), path=path)


# -- vocabulary -----------------------------------------------------------------------------------------------

ARCHITECTURES = {
    "amd64": "amd64",
    "x86_64": "amd64",
    "x86-64": "amd64",
    "x86": "amd64",
    "x64": "amd64",
    "intel": "amd64",
    "arm64": "arm64",
    "aarch64": "arm64",
    "arm64/v8": "arm64",
    "graviton": "arm64",
    "apple silicon": "arm64",
    "armv7": "arm/v7",
    "arm/v7": "arm/v7",
    "armhf": "arm/v7",
    "arm 32-bit": "arm/v7",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
MULTI_ARCH = ("amd64", "arm64")
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
    "py": "python",
    "node": "node",
    "nodejs": "node",
    "node.js": "node",
    "go": "go",
    "golang": "go",
    "java": "java",
    "openjdk": "java",
    "jdk": "java",
    "ruby": "ruby",
    "rust": "rust",
    "php": "php",
    "r": "r",
}
DISTROS = {
    "ubuntu": "ubuntu",
    "debian": "debian",
    "alpine": "alpine",
    "fedora": "fedora",
    "rockylinux": "rockylinux",
    "rocky linux": "rockylinux",
    "almalinux": "almalinux",
    "amazonlinux": "amazonlinux",
    "amazon linux": "amazonlinux",
    "centos": "centos",
    "busybox": "busybox",
    "distroless": "distroless",
    "opensuse": "opensuse/leap",
}
# Names of images that are bases when written name:tag (a bare "python:3.12-slim").
KNOWN_IMAGES = set(DISTROS.values()) | {
    "python",
    "node",
    "golang",
    "ruby",
    "rust",
    "php",
    "openjdk",
    "eclipse-temurin",
    "postgres",
    "redis",
    "nginx",
    "httpd",
    "r-base",
    "cuda",
    "mcr.microsoft.com",
}
DISTRO_CODENAMES = {"bookworm", "bullseye", "buster", "trixie", "jammy", "noble", "focal", "bionic"}
# Phrases that name a package by what it is.
PACKAGE_ALIASES = {
    "postgres client tools": "postgresql-client",
    "postgres client": "postgresql-client",
    "postgresql client": "postgresql-client",
    "psql": "postgresql-client",
    "azure cli": "azure-cli",
    "aws cli": "aws-cli",
    "awscli": "aws-cli",
}
# Words never taken as packages: function words, verbs and nouns of requests, and a few other languages' ones.
_STOP_TEXT = """
    a an the my our your their its this that these those some any all every each both either it them me us we you i
    he she they one two three few several lots lot bunch many much more most other another such same own
    and or nor but plus also too as so then than if when while where which who whom what why how whether
    with without within w/ of for from to in into on onto at by via per about over under above after before
    is are was were be been being am do does did done doing have has had having can could will would shall should
    may might must need needs needed needing want wants wanted wanting like likes would'd i'd we'd i'm we're it's
    that's let's let please pls plz thanks thank ok okay yes yeah sure fine great good nice cool hi hello hey
    use using used install installs installed installing add adds added adding include includes included including
    put get gets got makes made making build builds built building create creates created set sets setup
    run runs running ship need require requires required requiring keep keeps compile compiles compiled compiling
    give gives support supports supported enable enabled bundle bundled contain contains containing have
    image images container containers docker dockerfile base based top version versions latest stable newest
    recent current default plain simple small tiny lightweight slim minimal full fat big huge fancy extra
    client clients tools tool utilities utility stuff thing things something anything everything nothing
    package packages pkg pkgs library libraries lib libs module modules extension extensions dependency
    dependencies deps gem gems crate crates app apps application service server project team teams data
    system runtime env environment framework sdk cli binary binaries static native natively
    just only also even still really actually maybe perhaps probably basically instead else
    new old first second last next now later soon today already again here there
    please thanks via etc e.g. i.e. eg ie inc
    arch archs architecture architectures platform platforms multi-arch multiarch multi-platform
    port ports registry registries push pushed publish published upload uploaded deploy deployed
    python3.x python3 x except without drop remove forget skip omit exclude excluding minus instead
    puerto porta port no none following model models
    mit und oder bitte avec et ou por favor con y una un une des le la les el los las ein eine einen das der die
    image imagen imagem s'il vous plaît merci danke gracias
    """
STOP_WORDS = set(_STOP_TEXT.split())
_STOP_AFTER_CUE = {"also", "too", "as", "well", "in", "it", "them"}

HIGH = Decimal("0.950")
GOOD = Decimal("0.900")
MEDIUM = Decimal("0.800")
FAIR = Decimal("0.700")
LOW = Decimal("0.400")
GUESS = Decimal("0.300")


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_ARCH_RE = re.compile(r"(?<![\w/-])(?:linux/)?(" + _alternation(ARCHITECTURES) + r")(?![\w-]|/v\d)", re.I)
_MULTI_ARCH_RE = re.compile(r"\b(multi[- ]?arch(?:itecture)?|multi[- ]?platform|both (?:archs?|architectures))\b", re.I)
_REGISTRY_RE = re.compile(r"(?<![\w.-])(" + _alternation(REGISTRIES) + r")(?![\w-])", re.I)
_HOST_RE = re.compile(
    r"(?<![\w./@-])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(?::\d{2,5})?(?:/[a-z0-9._-]+)*)(?![\w/-])", re.I
)
_REGISTRY_DOMAINS = ("ghcr.io", "quay.io", "docker.io", "amazonaws.com", "gcr.io", "pkg.dev", "azurecr.io")
_REGISTRY_HOST_CUE_RE = re.compile(
    r"\b(?:push(?:ed)?|publish(?:ed)?|upload(?:ed)?|go|goes|save\s+it|store\s+it|registry(?:\s+is)?)\b[^.;!?]{0,25}$",
    re.I,
)
_LANG_NAMES = _alternation([w for w in LANGUAGES if w != "r"])
_LANGUAGE_RE = re.compile(
    r"(?<![\w./-])(" + _LANG_NAMES + r")(?:\s*(?:v(?=\d)|version\s+)?(\d+(?:\.(?:\d+|x))*)(?:\s*lts)?)?"
    r"(?![\w:/]|-(?!\w*fpm)|\.\w)",
    re.I,
)
_R_RE = re.compile(r"(?<![\w-])R\s+(\d+\.\d+(?:\.\d+)?)(?![\w.-])")
_TYPO_RE = re.compile(
    r"(?<![\w-])([a-z]{4,9})\s*(\d+(?:\.\d+){1,2}|(?<=\s)(?:" + "|".join(sorted(DISTRO_CODENAMES)) + r"))(?![\w.])",
    re.I,
)
_TYPO_TARGETS = {"python": "language", "golang": "language", "ubuntu": "base", "debian": "base", "alpine": "base"}
_IMAGE_REF_RE = re.compile(
    r"(?<![\w./:-])((?:[a-z0-9][a-z0-9._-]*/)*[a-z0-9][a-z0-9._-]*:[a-z0-9][a-z0-9._-]*)(?![\w/:-])", re.I
)
_BASE_CUE_RE = re.compile(r"\b(?:from|based on|base(?: image)?(?: is|:)?|on top of|build:)\s*$", re.I)
_DISTRO_RE = re.compile(
    r"(?<![\w./-])(" + _alternation(DISTROS) + r")(?:[\s:]+(\d+(?:\.\d+)?|" + _alternation(DISTRO_CODENAMES) + r"))?"
    r"(?![\w]|-(?!based\b))",
    re.I,
)
_ENV_RE = re.compile(r"(?<![\w$])([A-Z][A-Z0-9_]*)=([^\s,;]+)")
_ENV_CHANGE_RE = re.compile(r"\b(?:change|set|make)\s+([A-Z][A-Z0-9_]+)\s+(?:to\s+|=\s*)?([^\s,;=]+)")
_ENV_KEY_RE = re.compile(r"(?<![\w$])([A-Z][A-Z0-9]*_[A-Z0-9_]+|[A-Z]{3,})(?![\w=])")
_PORT_CUE_RE = re.compile(
    r"\b(?:ports?(?:\s+(?:to|is|=))?|expos(?:e|es|ing)|listen(?:s|ing)?\s+on|puerto|porta|serves?\s+on|metrics\s+on|on\s+port)"
    r"\s*:?\s*((?:\d{1,6}(?:\s*(?:,|and|&|or|/|und|y|et)\s*|\s+))*\d{1,6})\b",
    re.I,
)
_BARE_VERSION_RE = re.compile(r"(?<![\w./-])(\d+(?:\.\d+){1,2}|\d+\.x)(?![\w.-])")
_BARE_INT_RE = re.compile(r"(?<![\w./:=-])(\d{2,5})(?![\w.%:-])")

# Negation: a cue and its scope (to the end of the clause).
_NEGATION_RE = re.compile(
    r"\b(?:no(?!\s*(?:[,.!?;:]|wait|thanks|problem|worries|need to|$))|not|never|without|except|exclude|excluding|"
    r"minus|drop|remove|forget|skip|omit|get rid of|instead of|(?:do|does|did)\s*n[o']t(?:\s+\w+)?|"
    r"(?:do|does)\s+not(?:\s+\w+)?|don't(?:\s+\w+)?|dont(?:\s+\w+)?|no longer|kein|keine|ohne|sans|sin)\b",
    re.I,
)
_SWAP_RE = re.compile(r"\b(?:swap|switch|replace|change)\s+(?!to\b|it\b|that\b)(.+?)\s+(?:for|to|with|by)\s+", re.I)
_SCOPE_END_RE = re.compile(
    r"[,;:.!?\n(]|\b(?:but|just|only|use|give|instead|and (?:add|use|keep|push)|then|keep|i'll|we'll)\b", re.I
)
_ONLY_RE = re.compile(r"\bonly\b|\bnur\b|\bsolo\b|\bseulement\b|^\s*just\b", re.I)
_CATEGORY_CHANGE_RE = re.compile(
    r"\b(?:change|switch|set|make)\s+(?:the\s+)?(?:ports?|arch\w*|platforms?)\s+(?:to|=)", re.I
)
_INSTEAD_RE = re.compile(r"\binstead\b(?!\s+of)|\bmake (?:it|that)\b", re.I)

_PACKAGE_CUE_RE = re.compile(
    r"(?:w/|^\s*(?:oh\s+|and\s+)*(?:and|just)\b|\b(?:with|use|only|install(?:ed|ing)?|pip install|apt(?:-get)? install|"
    r"add(?:ing)?|plus|including|include|"
    r"needs?|require[sd]?|wants?|packages?(?: we need)?|pkgs|deps|dependencies|mit|avec|con|and also|also)\b|\+)",
    re.I,
)
_LIST_LINE_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$", re.M)
_LIST_END_RE = re.compile(
    r"[.;!?:](?=\s|$)|[\n(]|\b(?:as|for|on|push(?:ed)?|to|in|from|based|targeting|exposing|expose|port|ports|listens?|under|"
    r"so|that|which|because|when|then|please|but|so that|bitte|pour|para|für|s'il)\b",
    re.I,
)
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._+-]*(?:(?:==|>=|<=|~=|!=|>|<)[0-9][0-9a-z.*]*)?$")
_QUESTION_RE = re.compile(
    r"^\s*(?:what|how|why|which|is|are|does|do you|will|when|where|who|should|would it|isn't)\b", re.I
)
_INTENT_RULES: list[tuple[str, Decimal, re.Pattern]] = [
    ("cancel", HIGH, re.compile(r"\b(cancel|abort|stop the build|never ?mind)\b", re.I)),
    (
        "status",
        MEDIUM,
        re.compile(r"\b(status|progress|is it (done|ready)|where is my (build|image)|finished yet|logs?)\b", re.I),
    ),
    (
        "modify_build",
        MEDIUM,
        re.compile(
            r"\b(instead|actually|change|switch|swap|replace|also add|remove|drop|update the (manifest|build)|rather|"
            r"only|not)\b",
            re.I,
        ),
    ),
    ("new_build", HIGH, re.compile(r"\b(build|make|create|need|want|set up|give me)\b.*\b(image|container)\b", re.I)),
    ("new_build", MEDIUM, re.compile(r"\b(build|make|create|need|want|push)\b", re.I)),
    ("question", MEDIUM, re.compile(r"(\?\s*$)|^\s*(how|what|why|which|can|does|is|do)\b", re.I)),
]


@dataclasses.dataclass
class _Found:
    kind: str
    value: str
    start: int
    end: int
    confidence: Decimal
    action: str = "add"


class RuleBasedExtractor:
    """Rules over the text, clause by clause: no network, deterministic; the default extractor.

    Per sentence: entities (image references, distros with or without a version, languages with their version,
    architectures, registries and registry hosts anywhere, env assignments, ports), then packages from lists
    (after "with", "install", "needs", "+", a colon, bullets) with stop-words dropped. Negation cues ("no", "not",
    "don't", "without", "drop", "remove", "instead of"...) turn what follows in their clause into removals; "only"
    and "instead" make a clause's multi-valued findings replacements. Earlier turns give the context: a bare
    version answers "which version?" or corrects the language; "both" answers "which architectures?".
    Intents: the first rule that matches wins (cancel, status, modify, new build, question), else ``other``.
    """

    interface_version = 2

    def extract(self, text: str) -> ExtractionResult:
        """Interface version 1: ``text`` alone, as a one-turn conversation."""
        return self.extract_conversation([Turn("user", text)])

    def extract_conversation(self, turns: Sequence[Turn]) -> ExtractionResult:
        last = max((i for i, t in enumerate(turns) if t.role == "user"), default=None)
        if last is None:
            return ExtractionResult(intents=[DetectedIntent("other", LOW, {})], requirements=[])
        text = turns[last].content
        context = _Context.of(self, turns[:last])
        requirements = self._requirements(text, context)
        return ExtractionResult(intents=self._intents(text, requirements), requirements=requirements)

    # -- intents -------------------------------------------------------------------------------------------

    def _intents(self, text: str, requirements: list[DetectedRequirement]) -> list[DetectedIntent]:
        entities: dict[str, list[str]] = {}
        for requirement in requirements:
            if requirement.action != "remove":
                entities.setdefault(requirement.requirement_type, []).append(requirement.value)
        for intent, confidence, pattern in _INTENT_RULES:
            if pattern.search(text):
                return [DetectedIntent(intent, confidence, entities)]
        if requirements:  # requirements with no verb still describe a build
            return [DetectedIntent("new_build", LOW, entities)]
        return [DetectedIntent("other", LOW, entities)]

    # -- requirements --------------------------------------------------------------------------------------

    def _requirements(self, text: str, context: "_Context") -> list[DetectedRequirement]:
        text = text.replace("\u2019", "'").replace("`", " ").replace("\u201c", '"').replace("\u201d", '"')
        found: list[_Found] = []
        for sentence_start, sentence in _sentences(text):
            found.extend(
                dataclasses.replace(f, start=f.start + sentence_start, end=f.end + sentence_start)
                for f in self._sentence(sentence, context)
            )
        result: list[DetectedRequirement] = []
        seen: set[tuple[str, str, str]] = set()
        # Within a message, what it takes away goes first: "use jax instead of tensorflow", "no ports, 8080".
        for f in sorted(found, key=lambda f: f.action != "remove"):
            key = (f.kind, f.value, f.action)
            if key not in seen and f.value:
                seen.add(key)
                result.append(DetectedRequirement(f.kind, f.value, f.confidence, f.action))
        return result

    def _sentence(self, sentence: str, context: "_Context") -> list[_Found]:
        lowered = sentence.lower()
        question = _QUESTION_RE.match(sentence) is not None and sentence.rstrip().endswith("?")
        if question or re.match(r"^\s*(what about|how about)\b", lowered):
            return []  # asking about something is not asking for it
        found: list[_Found] = []
        mask = [False] * len(sentence)

        def take(kind, value, start, end, confidence):
            if any(mask[start:end]):
                return False
            mask[start:end] = [True] * (end - start)
            found.append(_Found(kind, value, start, end, confidence))
            return True

        for match in _ENV_CHANGE_RE.finditer(sentence):
            take("env", f"{match.group(1)}={match.group(2).rstrip('.,')}", match.start(1), match.end(), HIGH)
        for match in _ENV_RE.finditer(sentence):
            take("env", f"{match.group(1)}={match.group(2).rstrip('.,')}", match.start(), match.end(), HIGH)

        for match in _HOST_RE.finditer(sentence):
            host = match.group(1).lower().rstrip(".")
            before = sentence[: match.start()]
            known = any(domain in host.split("/")[0] for domain in _REGISTRY_DOMAINS)
            cued = _REGISTRY_HOST_CUE_RE.search(before) is not None
            if (known or cued or "/" in host or ":" in host) and not _looks_like_language(host):
                take("registry", host, match.start(), match.end(), HIGH if known or cued else FAIR)

        for match in _IMAGE_REF_RE.finditer(sentence):
            image = match.group(1).lower()
            name = image.split(":")[0]
            cued = _BASE_CUE_RE.search(sentence[: match.start()]) is not None
            if cued or name.split("/")[-1] in KNOWN_IMAGES or "/" in name:
                take("base_image", image, match.start(), match.end(), HIGH)

        for match in _DISTRO_RE.finditer(sentence):
            name, version = DISTROS[match.group(1).lower()], match.group(2)
            take("base_image", f"{name}:{version.lower()}" if version else name, match.start(), match.end(), GOOD)

        for match in _LANGUAGE_RE.finditer(sentence):
            word, version = match.group(1).lower(), match.group(2)
            if word in ("go", "py") and not version:
                continue  # "let's go", "py" alone: too often not the language
            if word == "python" and not version and lowered[match.end() : match.end() + 1] == "3":
                version = "3"
            if version and version.endswith(".x"):
                version = version[:-2]
            language = LANGUAGES[word]
            end = match.end(2) if version else match.end(1)
            if not version and self._language_is_a_package(sentence, match, found):
                continue
            take("language", f"{language} {version}" if version else language, match.start(), end, GOOD)
        for match in re.finditer(r"(?<![\w-])python3(?![\w.-])", sentence, re.I):
            take("language", "python 3", match.start(), match.end(), MEDIUM)
        for match in _R_RE.finditer(sentence):
            take("language", f"r {match.group(1)}", match.start(), match.end(), MEDIUM)
        for match in _TYPO_RE.finditer(sentence):
            word = match.group(1).lower()
            close = difflib.get_close_matches(word, _TYPO_TARGETS, n=1, cutoff=0.75)
            if close and word not in LANGUAGES and word not in DISTROS:
                target = close[0]
                if _TYPO_TARGETS[target] == "language":
                    take("language", f"{LANGUAGES[target]} {match.group(2)}", match.start(), match.end(), FAIR)
                else:
                    take("base_image", f"{target}:{match.group(2)}", match.start(), match.end(), FAIR)

        for match in _ARCH_RE.finditer(sentence):
            take("architecture", ARCHITECTURES[match.group(1).lower()], match.start(), match.end(), HIGH)
        for match in _MULTI_ARCH_RE.finditer(sentence):
            if take("architecture", MULTI_ARCH[0], match.start(), match.end(), GOOD):
                found.append(_Found("architecture", MULTI_ARCH[1], match.start(), match.end(), GOOD))

        for match in _REGISTRY_RE.finditer(sentence):
            take("registry", REGISTRIES[match.group(1).lower()], match.start(), match.end(), HIGH)

        for match in _PORT_CUE_RE.finditer(sentence):
            for number in re.finditer(r"\d+", match.group(1)):
                if 1 <= int(number.group()) <= 65535:
                    start = match.start(1) + number.start()
                    take("port", number.group(), start, start + len(number.group()), HIGH)

        for alias, package in PACKAGE_ALIASES.items():
            for match in re.finditer(rf"(?<![\w-]){re.escape(alias)}(?![\w-])", lowered):
                take("package", package, match.start(), match.end(), MEDIUM)

        self._context_values(sentence, context, found, take)
        self._packages(sentence, found, mask, context)
        self._negations(sentence, found, context)
        self._replacements(sentence, found)
        return found

    @staticmethod
    def _language_is_a_package(sentence: str, match: re.Match, found: list[_Found]) -> bool:
        """An unversioned language word listed after another language ("ruby 3.3, nodejs, yarn") is a package."""
        other = [f for f in found if f.kind == "language" and f.start < match.start()]
        return bool(other) and re.search(r"[,+]\s*$|\band\s*$", sentence[: match.start()]) is not None

    @staticmethod
    def _context_values(sentence, context: "_Context", found, take) -> None:
        """Bare values that earlier turns explain: a version, "both", a port number."""
        lowered = sentence.lower()
        if context.asked == "architecture" and re.search(r"\b(both|all of them|either)\b", lowered):
            for arch in MULTI_ARCH:
                found.append(_Found("architecture", arch, 0, 0, MEDIUM))
        if not any(f.kind == "language" for f in found) and context.language:
            name = context.language.split()[0]
            for match in _BARE_VERSION_RE.finditer(sentence):
                version = match.group(1).removesuffix(".x")
                negated = re.search(r"\bnot\s*$", sentence[: match.start()], re.I)
                if negated:
                    continue
                take("language", f"{name} {version}", match.start(), match.end(), MEDIUM)
                break
            else:
                if context.asked == "version":
                    for match in re.finditer(r"(?<![\w.])(\d{1,2})(?![\w.])", sentence):
                        take("language", f"{name} {match.group(1)}", match.start(), match.end(), MEDIUM)
                        break
        if context.ports and not any(f.kind == "port" for f in found):
            for match in _BARE_INT_RE.finditer(sentence):
                if 1 <= int(match.group(1)) <= 65535:
                    take("port", match.group(1), match.start(), match.end(), FAIR)

    def _packages(self, sentence: str, found: list[_Found], mask: list[bool], context: "_Context") -> None:
        """Package names in list clauses: after a cue, a colon, on bullet lines, or a bare answer to "which
        packages?"."""
        spans: list[tuple[int, int, Decimal]] = []
        for match in _PACKAGE_CUE_RE.finditer(sentence):
            end = _list_end(sentence, match.end())
            spans.append((match.end(), end, MEDIUM))
        for match in re.finditer(r":\s*", sentence):
            end = _list_end(sentence, match.end())
            if sentence.count(",", match.end(), end) >= 1:
                spans.append((match.end(), end, MEDIUM))
        for match in _LIST_LINE_RE.finditer(sentence):
            spans.append((match.start(1), match.end(1), MEDIUM))
        for f in found:  # "node 20, pnpm" / "amazonlinux 2023, aws-cli and jq"
            if f.kind in ("language", "base_image") and re.match(r"\s*,", sentence[f.end :]):
                spans.append((f.end, _list_end(sentence, f.end), FAIR))
        if context.asked == "package" and not spans:
            spans.append((0, len(sentence), MEDIUM))
        for match in _NEGATION_RE.finditer(sentence):
            spans.append((match.end(), _scope_end(sentence, match.end()), MEDIUM))
        for match in _SWAP_RE.finditer(sentence):
            spans.append((match.start(1), _list_end(sentence, match.end()), MEDIUM))
        bare_list = re.fullmatch(r"\s*[\w.+-]+(?:\s*(?:,|\band\b|&)\s*[\w.+-]+)+\s*(?:please|pls)?[.!]?\s*", sentence)
        if not spans and bare_list:  # a message that is only a list: "numpy, pandas and scikit-learn"
            spans.append((0, len(sentence), MEDIUM))
        if not spans and not found:
            # No list anywhere and nothing else recognised: words that look like packages are only guesses, under
            # MIN_CONFIDENCE (a person may confirm them; the manifest does not use them until then).
            spans.append((0, len(sentence), GUESS))
        taken = set()
        for start, end, confidence in spans:
            for word in re.finditer(r"[^\s,&+/()\"']+", sentence[start:end]):
                a, b = start + word.start(), start + word.end()
                if any(mask[a:b]) or (a, b) in taken:
                    continue
                token = word.group().strip(".'\"`!?;:*").lower()
                if _is_package(token):
                    taken.add((a, b))
                    found.append(_Found("package", token, a, b, confidence))

    @staticmethod
    def _negations(sentence: str, found: list[_Found], context: "_Context") -> None:
        """Findings inside a negation's scope become removals; "no ports" / "push anywhere" remove every one."""
        scopes = []
        for match in _NEGATION_RE.finditer(sentence):
            cue = match.group().lower()
            end = _scope_end(sentence, match.end())
            if cue == "instead of":  # only the alternative named right after it
                following = [f for f in found if f.start >= match.end() and f.start < end]
                end = min((f.end for f in following), default=end)
            scopes.append((match.end(), end))
        swaps = [(m.start(1), m.end(1)) for m in _SWAP_RE.finditer(sentence)]
        for f in found:
            if any(a <= f.start < b for a, b in scopes) or (
                f.kind != "env" and any(a <= f.start < b for a, b in swaps)  # "change KEY to value" sets KEY
            ):
                f.action = "remove"
        negation_scopes = list(scopes)
        scopes += swaps
        port_context = context.ports or any(f.kind == "port" for f in found)
        for a, b in scopes:
            if port_context:  # "port 9090 not 8080"
                for number in _BARE_INT_RE.finditer(sentence, a, b):
                    start = number.start(1)
                    if 1 <= int(number.group(1)) <= 65535 and not any(f.start <= start < f.end for f in found):
                        found.append(_Found("port", number.group(1), start, number.end(1), MEDIUM, "remove"))
        for match in _NEGATION_RE.finditer(sentence):
            scope = sentence[match.start() : _scope_end(sentence, match.end())].lower()
            if re.search(r"\b(push|registry)\b.*\b(anywhere|any ?where)\b", scope):
                found.append(_Found("registry", "*", match.start(), match.end(), MEDIUM, "remove"))
        for a, b in negation_scopes:
            scope = sentence[a:b].lower()
            if re.search(r"\bports?\b", scope) and not any(f.kind == "port" and a <= f.start < b for f in found):
                found.append(_Found("port", "*", a, b, MEDIUM, "remove"))
        for a, b in scopes:
            for key in _ENV_KEY_RE.finditer(sentence[a:b]):
                if not any(f.kind == "env" and f.start == a + key.start() for f in found):
                    found.append(_Found("env", key.group(1), a + key.start(), a + key.end(), MEDIUM, "remove"))

    @staticmethod
    def _replacements(sentence: str, found: list[_Found]) -> None:
        """In a clause with "only" or "instead", multi-valued findings replace the earlier ones of their type."""
        for clause_start, clause in _clauses(sentence):
            if not (_ONLY_RE.search(clause) or _INSTEAD_RE.search(clause) or _CATEGORY_CHANGE_RE.search(clause)):
                continue
            for f in found:
                inside = clause_start <= f.start < clause_start + len(clause)
                if inside and f.action == "add" and f.kind in ("package", "architecture", "port"):
                    f.action = "replace"


@dataclasses.dataclass
class _Context:
    """What earlier turns established: the language so far, whether ports were given, and what the assistant
    asked last (``version``, ``architecture``, ``package``)."""

    language: str | None = None
    ports: bool = False
    asked: str | None = None

    @classmethod
    def of(cls, extractor: RuleBasedExtractor, turns: Sequence[Turn]) -> "_Context":
        context = cls()
        for turn in turns:
            if turn.role == "assistant":
                asked = turn.content.lower()
                context.asked = (
                    "version"
                    if "version" in asked
                    else "architecture"
                    if re.search(r"architecture|platform|\barch", asked)
                    else "package"
                    if "package" in asked
                    else None
                )
                continue
            if turn.role != "user":
                continue
            context.asked = None
            sub = _Context(language=context.language, ports=context.ports)
            for requirement in extractor._requirements(turn.content, sub):
                is_language = requirement.requirement_type == "language" and requirement.action != "remove"
                if is_language and (" " in requirement.value or not context.language):
                    context.language = requirement.value
                if requirement.requirement_type == "port" and requirement.action != "remove":
                    context.ports = True
        return context


def _sentences(text: str):
    """(offset, sentence) pieces: split at . ! ? ; followed by a space or the end, and at newlines that do not
    continue a bullet list."""
    start = 0
    for match in re.finditer(r"[.!?;](?=\s|$)|\n(?!\s*(?:[-*•]|\d+[.)])\s)", text):
        if re.fullmatch(r"\s*\d+", text[text.rfind("\n", 0, match.start()) + 1 : match.start()]):
            continue  # "1. numpy": a numbered list item, not a sentence's end
        piece = text[start : match.end()]
        if piece.strip():
            yield start, piece
        start = match.end()
    if text[start:].strip():
        yield start, text[start:]


def _clauses(sentence: str):
    start = 0
    for match in re.finditer(r"[,;:]", sentence):
        yield start, sentence[start : match.start()]
        start = match.end()
    yield start, sentence[start:]


def _list_end(sentence: str, start: int) -> int:
    match = _LIST_END_RE.search(sentence, start)
    return match.start() if match else len(sentence)


def _scope_end(sentence: str, start: int) -> int:
    match = _SCOPE_END_RE.search(sentence, start)
    return match.start() if match else len(sentence)


def _looks_like_language(host: str) -> bool:
    return host in ("node.js",)


def _is_package(token: str) -> bool:
    if not token or token in STOP_WORDS or token in _STOP_AFTER_CUE or len(token) > 80:
        return False
    if token in ARCHITECTURES or token in REGISTRIES or token in DISTROS or token in DISTRO_CODENAMES:
        return False
    if token in LANGUAGES and token not in ("nodejs",):
        return False
    if re.fullmatch(r"v?\d+(\.\d+)*(\.x)?|\d+-bit|linux/.*|[a-z]", token):
        return False
    if "=" in token and not re.search(r"[<>=!~]=|[<>]", token):
        return False
    return _PACKAGE_RE.fullmatch(token) is not None
