"""LLM-backed extractors against a model server on loopback that speaks each API's wire format (recorded
responses): success, malformed output, timeout, retries, unreachable model, and the call's cost recorded."""

import copy
import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from intake import services
from intake.extractors import Turn
from intake.llm import REQUIREMENTS_SCHEMA, AnthropicExtractor, OpenAICompatibleExtractor, parse_answer
from intake.models import ConversationMessage
from tests.licensing.factories import CustomerFactory

RECORDED = Path(__file__).with_name("recorded")
ANTHROPIC_OK = json.loads((RECORDED / "anthropic_messages.json").read_text())
OPENAI_OK = json.loads((RECORDED / "openai_chat_completion.json").read_text())
TURNS = [
    Turn("user", "python 3.12 with gdal and proj for arm64 and amd64"),
    Turn("assistant", "Anything else?"),
    Turn("user", "actually make it arm64 only, and drop proj"),
]


class ModelServer:
    """A threading HTTP server on 127.0.0.1 that answers each POST with the next scripted reply."""

    def __init__(self):
        self.replies: list[tuple[int, object, float]] = []
        self.requests: list[tuple[str, dict, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, dict(self.headers), body))
                status, reply, delay = server.replies.pop(0) if server.replies else (500, {"error": "none"}, 0)
                time.sleep(delay)
                payload = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, body, *, status=200, delay=0.0):
        self.replies.append((status, body, delay))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    model_server = ModelServer()
    yield model_server
    model_server.close()


def _anthropic(server, **kwargs):
    options = {"model": "claude-haiku-4-5", "api_key": "sk-ant-test-secret", "timeout": 5, "max_retries": 0}
    return AnthropicExtractor(base_url=server.url, **options | kwargs)


def _openai(server, **kwargs):
    options = {"model": "qwen2.5-7b-instruct", "api_key": "", "timeout": 5, "max_retries": 0}
    return OpenAICompatibleExtractor(base_url=f"{server.url}/v1", **options | kwargs)


def _with_text(recorded, text):
    reply = copy.deepcopy(recorded)
    if "content" in reply:
        reply["content"][0]["text"] = text
    else:
        reply["choices"][0]["message"]["content"] = text
    return reply


def test_anthropic_success_uses_structured_output(server):
    """The Messages API is called with the JSON Schema as output format; the answer's removals, replacements
    and usage come back."""
    server.reply(ANTHROPIC_OK)
    result = _anthropic(server).extract_conversation(TURNS)
    path, headers, body = server.requests[0]
    assert path == "/v1/messages"
    assert "sk-ant-test-secret" in str(headers), sorted(headers)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": REQUIREMENTS_SCHEMA}}
    assert "(LAST USER MESSAGE): actually make it arm64 only" in body["messages"][0]["content"]
    assert [(r.requirement_type, r.value, r.action) for r in result.requirements] == [
        ("architecture", "arm64", "replace"),
        ("package", "proj", "remove"),
    ]
    assert result.intents[0].intent == "modify_build"
    usage = result.usage
    assert (usage.model, usage.prompt_tokens, usage.completion_tokens, usage.fell_back) == (
        "claude-haiku-4-5",
        812,
        96,
        False,
    )


def test_openai_compatible_success_against_a_base_url(server):
    """A self-hosted OpenAI-compatible server (base URL) gets response_format = the JSON Schema, strict."""
    server.reply(OPENAI_OK)
    result = _openai(server).extract_conversation([Turn("user", "python 3.12 with numpy, ghcr not docker hub")])
    path, _, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert body["response_format"]["json_schema"] == {
        "name": "requirements",
        "schema": REQUIREMENTS_SCHEMA,
        "strict": True,
    }
    assert body["messages"][0]["role"] == "system"
    assert ("registry", "dockerhub", "remove") in [(r.requirement_type, r.value, r.action) for r in result.requirements]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (700, 80)


@pytest.mark.parametrize("make", [_anthropic, _openai])
@pytest.mark.parametrize(
    "text",
    [
        "I think you want arm64",  # not JSON
        json.dumps({"intent": "new_build", "intent_confidence": 1, "requirements": [{"type": "colour"}]}),
        json.dumps({"intent": "dance", "intent_confidence": 1, "requirements": []}),
    ],
)
def test_malformed_answer_falls_back_and_keeps_the_usage(server, make, text):
    """An answer that does not match the schema is not trusted: the rule-based extractor answers, and the
    tokens the call used are still reported."""
    recorded = ANTHROPIC_OK if make is _anthropic else OPENAI_OK
    server.reply(_with_text(recorded, text))
    result = make(server).extract_conversation(TURNS)
    assert result.usage.fell_back is True
    assert result.usage.prompt_tokens in (812, 700)
    assert ("architecture", "arm64", "replace") in [
        (r.requirement_type, r.value, r.action) for r in result.requirements
    ]


@pytest.mark.parametrize("make", [_anthropic, _openai])
def test_timeout_falls_back(server, make):
    """A model slower than the timeout is abandoned and the rule-based extractor answers.

    The model answers only after 30 s; the call must come back long before. The bound is loose on purpose: the
    SDK's first import alone can take seconds on a loaded machine, and that is not what is under test."""
    server.reply(ANTHROPIC_OK if make is _anthropic else OPENAI_OK, delay=30)
    started = time.monotonic()
    result = make(server, timeout=0.5).extract_conversation(TURNS)
    assert time.monotonic() - started < 15
    assert result.usage.fell_back is True and result.usage.prompt_tokens == 0
    assert any(r.action == "remove" for r in result.requirements)


@pytest.mark.parametrize("make", [_anthropic, _openai])
def test_unreachable_model_falls_back(server, make):
    """Nothing listening at the base URL: the rule-based extractor answers."""
    server.close()
    result = make(server).extract_conversation(TURNS)
    assert result.usage.fell_back is True
    assert result.requirements


def test_server_error_is_retried(server):
    """A 529/5xx answer is retried (max_retries) before the call succeeds."""
    server.reply({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, status=529)
    server.reply(ANTHROPIC_OK)
    result = _anthropic(server, max_retries=1).extract_conversation(TURNS)
    assert len(server.requests) == 2
    assert result.usage.fell_back is False


def test_missing_key_is_a_clear_configuration_error(monkeypatch):
    """Without a key the Anthropic extractor refuses to start, saying which setting to give."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="HONUA_LLM_API_KEY"):
        AnthropicExtractor(api_key="")


def test_key_never_in_repr():
    """The API key does not appear in the extractor's repr."""
    assert "secret" not in repr(AnthropicExtractor(api_key="sk-ant-secret", base_url="http://127.0.0.1:9"))


def test_parse_answer_clamps_confidence():
    """Confidences outside 0..1 are clamped; a non-number is malformed."""
    intents, requirements = parse_answer(
        json.dumps(
            {
                "intent": "new_build",
                "intent_confidence": 3,
                "requirements": [{"type": "port", "value": "80", "action": "add", "confidence": -1}],
            }
        )
    )
    assert (intents[0].confidence, requirements[0].confidence) == (Decimal(1), Decimal(0))


@pytest.mark.django_db
def test_extraction_call_is_recorded_and_priced(server):
    """message_extract with an LLM extractor records its findings and the call itself: a tool message with the
    call's tokens, priced at the model's price (claude-haiku-4: $1 / $5 per million), in the totals."""
    server.reply(ANTHROPIC_OK)
    conversation = services.conversation_start(customer=CustomerFactory(), model="claude-sonnet-4")
    message = services.message_add(conversation=conversation, role="user", content="arm64 only, drop proj")
    with override_settings(
        HONUA_LLM_BASE_URL=server.url,
        HONUA_LLM_MODEL="claude-haiku-4-5",
        HONUA_LLM_MAX_RETRIES=0,
        HONUA_LLM_API_KEY="sk-ant-test",
    ):
        _, extractions = services.message_extract(message=message, extractor=AnthropicExtractor())
    assert [(e.value, e.action) for e in extractions] == [("arm64", "replace"), ("proj", "remove")]
    call = ConversationMessage.objects.get(conversation=conversation, role="tool")
    assert (call.model, call.prompt_tokens, call.completion_tokens) == ("claude-haiku-4-5", 812, 96)
    assert call.cost == Decimal("0.001292") and not call.unpriced  # 812 * 1 / 1e6 + 96 * 5 / 1e6
    conversation.refresh_from_db()
    assert conversation.total_cost == Decimal("0.001292")
