"""The build queue's SQL API is spelled once in Python: builds/queue/client.py (docs/where-things-live.md)."""

import re
from pathlib import Path

import pytest

from builds.queue import client
from builds.queue.client import QueueClient
from honua import errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("honua", "licensing", "builds", "intake", "operations", "console")
CLIENT = ROOT / "builds" / "queue" / "client.py"
# The queue's SQL functions the Python side calls; a call is SELECT ... <name>( in a string.
FUNCTIONS = (
    "claim_builds",
    "get_next_build_for_worker",
    "enqueue_build_v2",
    "complete_build",
    "complete_build_v2",
    "update_build_progress",
    "append_build_log",
    "record_build_metric",
    "attach_build_artifact",
    "release_build",
    "cancel_build",
    "retry_build",
    "reprioritize_build",
    "handle_build_timeouts",
    "rescue_expired_builds",
    "pause_claims",
    "resume_claims",
)
CALL = re.compile(r"(?:SELECT|FROM)\b[^\n]*?\b(" + "|".join(FUNCTIONS) + r")\(")


def _calls_outside_client(root: Path = ROOT, *, client: Path = CLIENT, call: re.Pattern = CALL) -> list[str]:
    """Every line of the app packages, outside ``client`` and the migrations, that spells a call ``call`` matches
    (the cache's guard, tests/builds/test_cache_client.py, scans with its own client and pattern)."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if path == root / client.relative_to(ROOT) or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for match in call.finditer(line):
                    found.append(f"{path.relative_to(root)}:{number}: {match.group(1)}")
    return found


def test_the_queue_sql_is_written_only_in_the_client():
    """A second copy of a call (the claim was once written three times, one without the worker's fix) fails here."""
    assert _calls_outside_client() == []
    spelled = {match.group(1) for match in CALL.finditer(CLIENT.read_text())}
    assert spelled == set(FUNCTIONS)


def test_the_scan_finds_a_copy(tmp_path):
    """The scan itself sees a claim written outside the client, and not the client's own (so the test above can
    fail)."""
    (tmp_path / "builds" / "queue").mkdir(parents=True)
    (tmp_path / "builds" / "queue" / "client.py").write_text(CLIENT.read_text())
    (tmp_path / "builds" / "queue" / "demo.py").write_text('SQL = "SELECT id FROM claim_builds(%s, %s)"\n')
    assert _calls_outside_client(tmp_path) == ["builds/queue/demo.py:1: claim_builds"]


@pytest.mark.django_db(transaction=True)
def test_the_client_runs_over_django_and_over_a_raw_psycopg_connection():
    """The same call over Django's connection and over a psycopg connection; errors become honua.errors by SQLSTATE."""
    import psycopg
    from django.db import connection

    assert QueueClient().claim_builds("w", 5) == []
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as raw:
        raw_client = QueueClient(raw)
        assert raw_client.claim_builds("w", 5) == []
        with pytest.raises(errors.InvalidArgument):
            raw_client.claim_builds("w", 0)  # HN001 from claim_builds: 1..1000
        assert raw_client.handle_build_timeouts() == 0
    with pytest.raises(errors.InvalidArgument):
        QueueClient().claim_builds("w", 0)
    assert client.claim_builds_sql("w", 1)[0].endswith("FROM claim_builds(%s, %s)")
