"""The build manifest: its schema (v1), its validation, and the deterministic mapping from extracted requirements.

A manifest is a JSON object; it is what the build queue receives (``build_queue.manifest``) and what the build
cache hashes. Schema v1, every key required except ``comments``, no other keys:

| key | type | meaning |
| --- | --- | --- |
| ``schema_version`` | ``1`` | this schema |
| ``base_image`` | string, an image reference (``name[:tag]``, lower case) | the image built upon |
| ``language`` | ``{"name": str, "version": str}`` or ``null`` | the language runtime |
| ``packages`` | list of strings, sorted, unique | packages installed in the image |
| ``architectures`` | non-empty list, sorted, unique: ``amd64 arm/v7 arm64 ppc64le riscv64 s390x`` | platforms |
| ``registry`` | ``{"type", "url", "registry_credential_id"}`` (strings or null) or ``null`` | where it goes (1) |
| ``env`` | object of ``KEY: value`` strings, keys ``[A-Z_][A-Z0-9_]*`` | environment variables |
| ``ports`` | list of integers 1..65535, sorted, unique | exposed ports |
| ``comments`` | list of strings | notes for a person (requirements that do not map); not part of the hash |

The hash is the build cache's canonical manifest hash (``builds.cache.services.manifest_hash``, SQL ``manifest_hash``):
null members and ``comments`` do not count, and the architectures are a sorted set.

(1) ``registry_credential_id`` is the id of the customer's registry credential (never a secret); the build cache
treats a manifest that names one as private to the customer (``manifest_is_shareable``).

Mapping from requirement extractions (``manifest_from_requirements``), in the conversation's order
(``created_at, id``):

- Each extraction contributes its effective value: the ``corrected_value`` when ``corrected``; nothing when
  ``incorrect``; its ``value`` when ``correct``, or when ``unverified`` with confidence >= ``MIN_CONFIDENCE``.
- Each extraction's ``action`` applies in order (``fold_requirements``): ``add`` adds its value; ``remove`` takes
  it away (``*`` takes every value of its type; a name without a version or tag removes any version of it:
  ``ubuntu`` removes ``ubuntu:22.04``, ``python`` removes ``python 3.12``; an env ``KEY`` removes that key);
  ``replace`` makes the values of one message's replacing extractions of a type the new set ("arm64 only").
  An unversioned language added after a versioned one of the same name keeps the version.
- ``base_image``, ``language``, ``registry``: the latest extraction wins (a later message revises an earlier one).
- ``package``, ``architecture``, ``port``: the union, sorted; architectures are normalised (``x86_64`` ->
  ``amd64``, ``aarch64`` -> ``arm64``) and default to ``["amd64"]``.
- ``env``: ``KEY=value``; the latest value of each key wins.
- ``base_image`` defaults from the language (``python 3.12`` -> ``python:3.12-slim``; see ``DEFAULT_BASES``), a
  language without a version gets ``DEFAULT_VERSIONS``; with neither, ``debian:bookworm-slim``.
- ``registry``: a known type (``ecr``...) or a host; the customer's oldest active credential of that type (or
  whose URL starts with that host) supplies ``url`` and ``registry_credential_id``.
- ``other`` extractions, and values that do not map (an unknown architecture, a port out of range), become
  ``comments``.
"""

import dataclasses
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal

from builds.cache.services import manifest_hash as manifest_hash  # re-exported: the one hash of a manifest
from intake.exceptions import ManifestInvalid
from intake.extractors import ARCHITECTURES, LANGUAGES, REGISTRIES

SCHEMA_VERSION = 1
MIN_CONFIDENCE = Decimal("0.5")
DEFAULT_ARCHITECTURES = ["amd64"]
DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
ALLOWED_ARCHITECTURES = frozenset(ARCHITECTURES.values())
DEFAULT_VERSIONS = {
    "python": "3.12",
    "node": "22",
    "go": "1.23",
    "java": "21",
    "ruby": "3.3",
    "rust": "1.82",
    "php": "8.3",
    "r": "4.4",
}
DEFAULT_BASES = {
    "python": "python:{version}-slim",
    "node": "node:{version}-slim",
    "go": "golang:{version}-bookworm",
    "java": "eclipse-temurin:{version}-jre",
    "ruby": "ruby:{version}-slim",
    "rust": "rust:{version}-slim",
    "php": "php:{version}-cli",
    "r": "r-base:{version}",
}
REGISTRY_TYPES = frozenset(REGISTRIES.values()) | {"generic"}

REQUIRED_KEYS = ("schema_version", "base_image", "language", "packages", "architectures", "registry", "env", "ports")
OPTIONAL_KEYS = ("comments",)

_IMAGE_RE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)*[a-z0-9._-]+(?::[A-Za-z0-9_.-]{1,128})?(?:@sha256:[0-9a-f]{64})?$", re.ASCII
)
_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+-]{0,40}$", re.ASCII)
_ENV_KEY_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")


ACTIONS = ("add", "remove", "replace")
SINGLE_VALUED = ("base_image", "language", "registry")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """An extraction's effective value, as the mapping sees it: what it does (``action``) and the message it came
    from (``source``: the replacements of one message and type form one new set)."""

    requirement_type: str
    value: str
    action: str = "add"
    source: object = None


@dataclasses.dataclass(frozen=True)
class Credential:
    """A registry credential the mapping may reference (id, type and URL only: never a secret)."""

    id: str
    registry_type: str
    registry_url: str


def validate_manifest(manifest: object) -> None:
    """Raise ``ManifestInvalid`` naming every way ``manifest`` departs from schema v1."""
    if not isinstance(manifest, dict):
        raise ManifestInvalid(["a manifest must be a JSON object"])
    errors: list[str] = []
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        errors.append(f"missing {', '.join(missing)}")
    unknown = sorted(set(manifest) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        errors.append(f"unknown key(s) {', '.join(unknown)}")
    if "schema_version" in manifest and manifest["schema_version"] != SCHEMA_VERSION:
        errors.append(f"schema_version must be {SCHEMA_VERSION}")
    if "base_image" in manifest:
        image = manifest["base_image"]
        if not isinstance(image, str) or not _IMAGE_RE.match(image):
            errors.append("base_image must be an image reference such as python:3.12-slim")
    if manifest.get("language") is not None:
        language = manifest["language"]
        if (
            not isinstance(language, dict)
            or set(language) != {"name", "version"}
            or not all(isinstance(v, str) and v for v in language.values())
        ):
            errors.append('language must be null or {"name": ..., "version": ...} with non-empty strings')
    if "packages" in manifest:
        _sorted_unique(manifest["packages"], "packages", str, errors)
    if "architectures" in manifest:
        archs = manifest["architectures"]
        if _sorted_unique(archs, "architectures", str, errors):
            if not archs:
                errors.append("architectures must name at least one platform")
            bad = [a for a in archs if a not in ALLOWED_ARCHITECTURES]
            if bad:
                errors.append(
                    f"unknown architecture(s) {', '.join(bad)}; expected {', '.join(sorted(ALLOWED_ARCHITECTURES))}"
                )
    if manifest.get("registry") is not None:
        registry = manifest["registry"]
        if not isinstance(registry, dict) or set(registry) != {"type", "url", "registry_credential_id"}:
            errors.append('registry must be null or {"type": ..., "url": ..., "registry_credential_id": ...}')
        else:
            if registry["type"] not in REGISTRY_TYPES:
                errors.append(f"registry type must be one of {', '.join(sorted(REGISTRY_TYPES))}")
            for key in ("url", "registry_credential_id"):
                if registry[key] is not None and not (isinstance(registry[key], str) and registry[key]):
                    errors.append(f"registry {key} must be null or a non-empty string")
    if "env" in manifest:
        env = manifest["env"]
        if not isinstance(env, dict):
            errors.append("env must be an object of KEY: value strings")
        else:
            bad_keys = [k for k in env if not _ENV_KEY_RE.match(k)]
            if bad_keys:
                errors.append(f"env key(s) {', '.join(bad_keys)} must match [A-Z_][A-Z0-9_]*")
            if not all(isinstance(v, str) for v in env.values()):
                errors.append("env values must be strings")
    if "ports" in manifest:
        ports = manifest["ports"]
        if _sorted_unique(ports, "ports", int, errors) and not all(
            not isinstance(p, bool) and 1 <= p <= 65535 for p in ports
        ):
            errors.append("ports must be between 1 and 65535")
    if "comments" in manifest and (
        not isinstance(manifest["comments"], list) or not all(isinstance(c, str) for c in manifest["comments"])
    ):
        errors.append("comments must be a list of strings")
    if errors:
        raise ManifestInvalid(errors)


def _sorted_unique(values: object, name: str, kind: type, errors: list[str]) -> bool:
    if not isinstance(values, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        errors.append(f"{name} must be a list of {'integers' if kind is int else 'strings'}")
        return False
    if values != sorted(set(values)):
        errors.append(f"{name} must be sorted and without duplicates")
        return False
    return True


def _removes(removal: str, kind: str, value: str) -> bool:
    """Whether a ``remove`` of ``removal`` takes ``value`` (of type ``kind``) away."""
    removal, value = removal.strip().lower(), value.strip().lower()
    if removal in ("*", value):
        return True
    if kind == "base_image":
        return ":" not in removal and value.split(":")[0].split("/")[-1] == removal
    if kind == "language":
        return " " not in removal and value.split()[0] == removal
    if kind == "env":
        return "=" not in removal and value.partition("=")[0].upper() == removal.upper()
    if kind == "architecture":
        return ARCHITECTURES.get(removal) == ARCHITECTURES.get(value, value)
    return False


def fold_requirements(requirements: Iterable[Requirement]) -> list[Requirement]:
    """The requirements that stand once every one's action has applied, in order (see the module doc); all
    ``add``. Single-valued types (``SINGLE_VALUED``) keep their latest value."""
    standing: dict[str, list[Requirement]] = {}
    group: dict[str, object] = {}  # type -> the source whose replacements are being gathered
    last_action: dict[str, str] = {}
    order: list[str] = []
    for requirement in requirements:
        kind, value = requirement.requirement_type, requirement.value.strip()
        if kind not in standing:
            standing[kind] = []
            order.append(kind)
        current = standing[kind]
        if requirement.action == "remove":
            current[:] = [r for r in current if not _removes(value, kind, r.value)]
            last_action[kind] = "remove"
            continue
        added = Requirement(kind, value)
        if requirement.action == "replace" and (
            group.get(kind, _NO_GROUP) != requirement.source
            or (requirement.source is None and last_action.get(kind) != "replace")
        ):
            current.clear()  # the first of a message's replacements of this type
        if requirement.action == "replace":
            group[kind] = requirement.source
        last_action[kind] = requirement.action
        if kind in SINGLE_VALUED:
            if kind == "language" and len(value.split()) == 1 and current:
                previous = current[-1].value.split()
                if previous[0].lower() == value.lower():
                    continue  # "python" after "python 3.12" keeps the version
            current[:] = [added]
        elif kind == "env":
            key = value.partition("=")[0]
            current[:] = [r for r in current if r.value.partition("=")[0] != key] + [added]
        elif all(r.value.lower() != value.lower() for r in current):
            current.append(added)
    return [r for kind in order for r in standing[kind]]


_NO_GROUP = object()


def manifest_from_requirements(requirements: Iterable[Requirement], *, credentials: Sequence[Credential] = ()) -> dict:
    """The schema-v1 manifest for ``requirements`` (effective values, in conversation order); see the module doc."""
    requirements = fold_requirements(requirements)
    base_image = language = registry = None
    packages: set[str] = set()
    architectures: set[str] = set()
    ports: set[int] = set()
    env: dict[str, str] = {}
    comments: list[str] = []
    for requirement in requirements:
        kind, value = requirement.requirement_type, requirement.value.strip()
        if kind == "base_image" and _IMAGE_RE.match(value.lower()):
            base_image = value.lower()
        elif kind == "language" and _language(value) is not None:
            language = _language(value)
        elif kind == "registry":
            registry = value.lower()
        elif kind == "package" and value:
            packages.add(value.lower())
        elif kind == "architecture" and value.lower() in ARCHITECTURES:
            architectures.add(ARCHITECTURES[value.lower()])
        elif kind == "port" and re.fullmatch(r"[0-9]{1,5}", value) and 1 <= int(value) <= 65535:
            ports.add(int(value))
        elif kind == "env" and "=" in value and _ENV_KEY_RE.match(value.partition("=")[0]):
            key, _, env_value = value.partition("=")
            env[key] = env_value
        elif kind == "other":
            comments.append(value)
        else:
            comments.append(f"unmapped {kind}: {value}")

    if language is not None and language["version"] is None:
        language["version"] = DEFAULT_VERSIONS[language["name"]]
    if base_image is None:
        template = DEFAULT_BASES.get(language["name"]) if language else None
        base_image = template.format(version=language["version"]) if template else DEFAULT_BASE_IMAGE

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "base_image": base_image,
        "language": language,
        "packages": sorted(packages),
        "architectures": sorted(architectures) or list(DEFAULT_ARCHITECTURES),
        "registry": _registry(registry, credentials) if registry else None,
        "env": dict(sorted(env.items())),
        "ports": sorted(ports),
    }
    if comments:
        manifest["comments"] = comments
    return manifest


def _language(value: str) -> dict | None:
    """``{"name", "version"}`` for "python", "Python 3.12"...; None when it does not read as a known language."""
    words = value.split()
    if not words or words[0].lower() not in LANGUAGES or len(words) > 2:
        return None
    if len(words) == 2 and not _VERSION_RE.match(words[1]):
        return None
    return {"name": LANGUAGES[words[0].lower()], "version": words[1] if len(words) == 2 else None}


def _registry(value: str, credentials: Sequence[Credential]) -> dict:
    registry_type = REGISTRIES.get(value, value if value in REGISTRY_TYPES else "generic")
    if registry_type == "generic":
        matches = [c for c in credentials if _strip_scheme(c.registry_url).startswith(value)]
        url = value
    else:
        matches = [c for c in credentials if c.registry_type == registry_type]
        url = None
    if matches:
        found = matches[0]
        return {"type": found.registry_type, "url": found.registry_url, "registry_credential_id": found.id}
    return {"type": registry_type, "url": url, "registry_credential_id": None}


def _strip_scheme(url: str) -> str:
    return re.sub(r"^[a-z]+://", "", url.lower())
