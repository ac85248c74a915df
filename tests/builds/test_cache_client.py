"""The build cache's SQL is spelled once in Python: builds/cache/client.py (docs/where-things-live.md)."""

import re

import pytest

from builds.cache.client import CacheClient, CacheError, CacheNotFound
from tests.builds.cache_factories import cached, sha
from tests.builds.test_queue_client import ROOT, _calls_outside_client

CLIENT = ROOT / "builds" / "cache" / "client.py"
# The cache's SQL functions the Python side calls (a call is SELECT ... <name>( in a string), and its view.
FUNCTIONS = (
    "record_cache_access",
    "register_build_in_cache",
    "register_cache_entry",
    "fold_cache_hit_counters",
    "fold_cache_access_rollup",
    "evict_cache_entries",
    "cache_entry_in_use",
    "verify_cache_entries",
    "get_cache_hit_rate",
)
VIEWS = ("cache_statistics",)
_FUNCTION_CALL = r"(?:SELECT|FROM)\b[^\n]*?\b(?=(?:" + "|".join(FUNCTIONS) + r")\()"
_VIEW_READ = r"\bFROM\s+(?=(?:" + "|".join(VIEWS) + r")\b)"
CALL = re.compile(rf"(?:{_FUNCTION_CALL}|{_VIEW_READ})(\w+)")


def test_the_cache_sql_is_written_only_in_the_client():
    """A second copy of a cache call in the app packages (the demo once wrote its own lookups and registration)
    fails here; the client spells every one."""
    assert _calls_outside_client(client=CLIENT, call=CALL) == []
    spelled = {match.group(1) for match in CALL.finditer(CLIENT.read_text())}
    assert spelled == {*FUNCTIONS, *VIEWS}


def test_the_scan_finds_a_copy_of_a_cache_call(tmp_path):
    """The scan sees a lookup and a view read written outside the client, and not the client's own (so the test
    above can fail)."""
    (tmp_path / "builds" / "cache").mkdir(parents=True)
    (tmp_path / "builds" / "cache" / "client.py").write_text(CLIENT.read_text())
    (tmp_path / "builds" / "cache" / "demo.py").write_text(
        'A = "SELECT id FROM record_cache_access(%s, %s)"\nB = "SELECT * FROM cache_statistics"\n'
    )
    assert _calls_outside_client(tmp_path, client=CLIENT, call=CALL) == [
        "builds/cache/demo.py:1: record_cache_access",
        "builds/cache/demo.py:2: cache_statistics",
    ]


@pytest.mark.django_db
def test_the_client_translates_the_cache_functions_refusals():
    """P0001 of a cache function is a CacheError, P0002 a CacheNotFound; the caller's transaction stays usable."""
    client = CacheClient()
    with pytest.raises(CacheError, match="64 lower-case hex"):
        client.record_cache_access("not-a-hash", "00000000-0000-4000-8000-000000000000")
    with pytest.raises(CacheNotFound, match="does not exist"):
        client.record_cache_access(sha("x"), "00000000-0000-4000-8000-000000000000")
    entry = cached()
    assert client.record_cache_access(entry.manifest_hash, entry.owner_id).pk == entry.pk
    assert client.fold_cache_hit_counters() == 1
    assert client.cache_statistics()[0]["scope"] == "overall"
