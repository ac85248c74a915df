"""LLM-backed extractors (interface version 2), with structured output against a JSON Schema of the requirements.

- ``AnthropicExtractor``: Anthropic's Messages API through the official ``anthropic`` SDK, with
  ``output_config.format`` = the JSON Schema (structured outputs).
- ``OpenAICompatibleExtractor``: the Chat Completions API through the official ``openai`` SDK with
  ``response_format`` = the JSON Schema; ``HONUA_LLM_BASE_URL`` points it at a self-hosted OpenAI-compatible
  server (vLLM, Ollama, llama.cpp's server...).

Configured by environment (see README's configuration table): ``HONUA_INTAKE_EXTRACTOR`` names the class;
``HONUA_LLM_MODEL``, ``HONUA_LLM_API_KEY``, ``HONUA_LLM_BASE_URL``, ``HONUA_LLM_TIMEOUT_SECONDS``,
``HONUA_LLM_MAX_RETRIES``, ``HONUA_LLM_MAX_TOKENS``. The SDK retries connection errors, timeouts, 429 and 5xx with
backoff (``max_retries``); each attempt is bounded by the timeout.

Every call reports its usage (``ExtractionResult.usage``: model, prompt and completion tokens, latency), which
``intake.services.message_extract`` records as a priced ``tool`` message, so what understanding a conversation
cost is in its totals. When the model cannot be reached (connection refused, timeout, every retry failed, an API
error) or its answer does not match the schema, the rule-based extractor answers instead (``usage.fell_back``),
and a warning is logged without the key or the conversation's text.
"""

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from intake.extractors import (
    DetectedIntent,
    DetectedRequirement,
    ExtractionResult,
    ExtractionUsage,
    RuleBasedExtractor,
    Turn,
)
from intake.models import INTENTS, REQUIREMENT_ACTIONS, REQUIREMENT_TYPES

logger = logging.getLogger(__name__)

# The JSON Schema the model's answer must match (kept to the subset both vendors' structured outputs accept:
# no numeric bounds, every property required, no additional properties).
REQUIREMENTS_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": ["intent", "intent_confidence", "requirements"],
    "properties": {
        "intent": {"type": "string", "enum": list(INTENTS)},
        "intent_confidence": {"type": "number"},
        "requirements": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "value", "action", "confidence"],
                "properties": {
                    "type": {"type": "string", "enum": list(REQUIREMENT_TYPES)},
                    "value": {"type": "string"},
                    "action": {"type": "string", "enum": list(REQUIREMENT_ACTIONS)},
                    "confidence": {"type": "number"},
                },
            },
        },
    },
}

SYSTEM_PROMPT = """You read a customer's conversation with a container-image build service and report what the
LAST user message asks for, in the light of the messages before it. Answer with JSON matching the schema.

intent: new_build, modify_build, question, status, cancel or other.
requirements: each with type, value, action and confidence (0 to 1, how sure you are).
Values, normalised:
- language: "name" or "name version", names python, node, go, java, ruby, rust, php, r ("python 3.12", "node 20")
- base_image: an image reference; a distro named in prose is name[:version] ("ubuntu:22.04", "debian:bookworm",
  "alpine")
- package: a package name, lower case, as the user wrote it ("scikit-learn", "python3-pip", "libpq-dev")
- architecture: amd64, arm64, arm/v7, ppc64le, s390x or riscv64 (x86/intel -> amd64, graviton/aarch64 -> arm64;
  "multi-arch" -> amd64 and arm64)
- registry: ecr, gcr, acr, ghcr, dockerhub, quay, harbor, or a registry host with its path
- env: KEY=value (to remove a variable: KEY)
- port: a TCP port number
- other: anything else a person should read
Actions: "add" (the default); "remove" for what the user no longer wants or explicitly does not want ("drop
proj", "no arm64", "not 8080", the X of "Y instead of X"; value "*" removes every value of the type, e.g. "no
ports"); "replace" when the message's values of a type replace all earlier ones ("arm64 only", "make it 8000
instead"). Report only what the last user message changes; nothing for a question about the service."""

NO_KEY = "the Anthropic extractor needs an API key: set HONUA_LLM_API_KEY (or ANTHROPIC_API_KEY)"
MALFORMED = "the model's answer does not match the requirements schema: {reason}"
CONFIDENCE_QUANTUM = Decimal("0.001")


class MalformedAnswer(ValueError):
    pass


class LLMExtractor:
    """The shared part: configuration, the fall-back, the parsing of the structured answer. Subclasses implement
    ``_call(system, prompt) -> (text, prompt_tokens, completion_tokens)``."""

    interface_version = 2
    vendor = ""

    def __init__(
        self,
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_tokens: int | None = None,
        fallback=None,
    ):
        self.model = model or settings.HONUA_LLM_MODEL
        self._api_key = api_key if api_key is not None else settings.HONUA_LLM_API_KEY
        self.base_url = base_url if base_url is not None else (settings.HONUA_LLM_BASE_URL or None)
        self.timeout = float(timeout if timeout is not None else settings.HONUA_LLM_TIMEOUT_SECONDS)
        self.max_retries = int(max_retries if max_retries is not None else settings.HONUA_LLM_MAX_RETRIES)
        self.max_tokens = int(max_tokens if max_tokens is not None else settings.HONUA_LLM_MAX_TOKENS)
        self.fallback = fallback or RuleBasedExtractor()

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def extract_conversation(self, turns: Sequence[Turn]) -> ExtractionResult:
        started = time.monotonic()
        prompt_tokens = completion_tokens = 0
        try:
            text, prompt_tokens, completion_tokens = self._call(SYSTEM_PROMPT, transcript(turns))
            intents, requirements = parse_answer(text)
        except MalformedAnswer as error:
            logger.warning("%s extractor (%s): %s; using the rule-based extractor", self.vendor, self.model, error)
        except Exception as error:
            if not self._is_api_error(error):
                raise
            logger.warning(
                "%s extractor (%s) unreachable: %s; using the rule-based extractor",
                self.vendor,
                self.model,
                type(error).__name__,
            )
        else:
            return ExtractionResult(
                intents=intents,
                requirements=requirements,
                usage=ExtractionUsage(self.model, prompt_tokens, completion_tokens, _elapsed_ms(started)),
            )
        result = self.fallback.extract_conversation(turns)
        usage = ExtractionUsage(self.model, prompt_tokens, completion_tokens, _elapsed_ms(started), fell_back=True)
        return ExtractionResult(intents=result.intents, requirements=result.requirements, usage=usage)

    def _call(self, system: str, prompt: str) -> tuple[str, int, int]:
        raise NotImplementedError

    def _is_api_error(self, error: Exception) -> bool:
        raise NotImplementedError


class AnthropicExtractor(LLMExtractor):
    """Claude through the Messages API, structured output with ``output_config.format``."""

    vendor = "anthropic"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not (self._api_key or os.environ.get("ANTHROPIC_API_KEY")):
            raise ImproperlyConfigured(NO_KEY)

    def _client(self):
        import anthropic

        return anthropic.Anthropic(
            api_key=self._api_key or None,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    def _call(self, system: str, prompt: str) -> tuple[str, int, int]:
        response = self._client().messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            system=system,
            messages=[{"role": "user", "content": prompt}],
            output_config={"format": {"type": "json_schema", "schema": REQUIREMENTS_SCHEMA}},
        )
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return text, response.usage.input_tokens, response.usage.output_tokens

    def _is_api_error(self, error: Exception) -> bool:
        import anthropic

        return isinstance(error, anthropic.APIError)


class OpenAICompatibleExtractor(LLMExtractor):
    """OpenAI's Chat Completions API, or any server speaking it (``HONUA_LLM_BASE_URL``), with
    ``response_format`` = the JSON Schema. A self-hosted server without keys gets a placeholder key."""

    vendor = "openai-compatible"

    def _client(self):
        import openai

        return openai.OpenAI(
            api_key=self._api_key or "unused",
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )

    def _call(self, system: str, prompt: str) -> tuple[str, int, int]:
        response = self._client().chat.completions.create(
            model=self.model,
            max_tokens=self.max_tokens,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "requirements", "schema": REQUIREMENTS_SCHEMA, "strict": True},
            },
        )
        usage = response.usage
        text = response.choices[0].message.content if response.choices else ""
        return text or "", usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0

    def _is_api_error(self, error: Exception) -> bool:
        import openai

        return isinstance(error, openai.APIError)


def transcript(turns: Sequence[Turn]) -> str:
    """The conversation as the model reads it: one ``role: text`` block per turn, the last user turn marked."""
    last = max((i for i, t in enumerate(turns) if t.role == "user"), default=-1)
    lines = []
    for index, turn in enumerate(turns):
        if turn.role not in ("user", "assistant"):
            continue
        marker = " (LAST USER MESSAGE)" if index == last else ""
        lines.append(f"{turn.role}{marker}: {turn.content}")
    return "Conversation so far:\n\n" + "\n\n".join(lines)


def parse_answer(text: str) -> tuple[list[DetectedIntent], list[DetectedRequirement]]:
    """The intents and requirements in the model's JSON answer, checked against the schema; ``MalformedAnswer``
    otherwise (naming what is wrong, never echoing the answer)."""
    try:
        answer = json.loads(text)
    except (TypeError, ValueError):
        raise MalformedAnswer(MALFORMED.format(reason="not JSON")) from None
    if not isinstance(answer, dict) or not isinstance(answer.get("requirements"), list):
        raise MalformedAnswer(MALFORMED.format(reason="no requirements list"))
    if answer.get("intent") not in INTENTS:
        raise MalformedAnswer(MALFORMED.format(reason="unknown intent"))
    requirements = []
    for item in answer["requirements"]:
        if not isinstance(item, dict):
            raise MalformedAnswer(MALFORMED.format(reason="a requirement is not an object"))
        kind, value, action = item.get("type"), item.get("value"), item.get("action", "add")
        if kind not in REQUIREMENT_TYPES or action not in REQUIREMENT_ACTIONS:
            raise MalformedAnswer(MALFORMED.format(reason="unknown requirement type or action"))
        if not isinstance(value, str) or not value.strip() or len(value) > 500:
            raise MalformedAnswer(MALFORMED.format(reason="a requirement value is empty or too long"))
        requirements.append(DetectedRequirement(kind, value.strip(), _confidence(item.get("confidence")), action))
    entities: dict[str, list[str]] = {}
    for requirement in requirements:
        if requirement.action != "remove":
            entities.setdefault(requirement.requirement_type, []).append(requirement.value)
    intent = DetectedIntent(answer["intent"], _confidence(answer.get("intent_confidence")), entities)
    return [intent], requirements


def _confidence(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedAnswer(MALFORMED.format(reason="a confidence is not a number"))
    clamped = min(max(Decimal(str(value)), Decimal(0)), Decimal(1))
    return clamped.quantize(CONFIDENCE_QUANTUM, rounding=ROUND_HALF_UP)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
