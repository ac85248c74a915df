"""The parallel load (issue 15): the cache access log on a second connection gives the same rows as the one-connection
load, and a failure on either connection leaves neither rows nor a database that looks seeded."""

import dataclasses
import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from honua import registry
from operations import seed
from operations.seed import INCOMPLETE_MARKER, TABLES, generate

ANCHOR = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
# Every row of every seeded table and of the cache rollups, except what is random by design (the secrets' nonces)
# or the time of the fold (the daily rollups are not compared).
CHECKED = [table for table in TABLES if table not in ("licenses", "registry_credentials")] + [
    "build_cache_access_rollup",
    "build_cache_access_monthly",
]


def _rows(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _partitions() -> set[str]:
    return {
        name
        for (name,) in _rows(
            "SELECT inhrelid::regclass::text FROM pg_inherits i JOIN pg_class c ON "
            "c.oid = i.inhrelid WHERE c.relkind IN ('r', 'p')"
        )
    }


@pytest.fixture(autouse=True)
def fixed_anchor_and_cleanup(monkeypatch):
    """The same anchor for every run; afterwards (the load commits) no marker and no monthly partition left behind
    for the other tests of this database (the flush empties the tables)."""
    monkeypatch.setattr(seed, "seed_anchor", lambda: ANCHOR)
    before, filled = _partitions(), _tables_with_rows()
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {INCOMPLETE_MARKER}")
        # The flush after the test empties Django's managed tables only.
        if left := sorted(_tables_with_rows() - filled):
            cursor.execute(f"TRUNCATE {', '.join(left)} RESTART IDENTITY CASCADE")
        for name in sorted(_partitions() - before, key=len, reverse=True):
            cursor.execute(f"DROP TABLE IF EXISTS {name}")


def _tables_with_rows() -> set[str]:
    tables = [
        name
        for (name,) in _rows(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            " AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        )
    ]
    return {name for name in tables if _rows(f'SELECT EXISTS (SELECT 1 FROM "{name}")')[0][0]}


# Its identity ids follow the order of cache_access_rollup_recount()'s GROUP BY (the plan's), not the data: left out.
ROW = {"build_cache_access_monthly": "(t.month, t.customer_id, t.hits, t.misses, t.time_saved_ms)"}


def _checksums() -> dict[str, str]:
    checksums = {}
    for table in CHECKED:
        row = ROW.get(table, "t")
        sql = f"SELECT md5(coalesce(string_agg({row}::text, ',' ORDER BY {row}::text), '')) FROM {table} t"
        checksums[table] = _rows(sql)[0][0]
    return checksums


def _empty_the_seeded_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(CHECKED)}, customers RESTART IDENTITY CASCADE")


def _break_step(monkeypatch, name: str) -> None:
    """Step ``name`` fails after its own statements have run."""
    step = registry.seed_steps() and registry._seed_steps[name]
    monkeypatch.setitem(
        registry._seed_steps, name, dataclasses.replace(step, statements=(*step.statements, "SELECT 1 / 0"))
    )


@pytest.mark.django_db(transaction=True)
def test_the_parallel_load_gives_the_rows_of_the_one_connection_load():
    """Same seed, two connections then one: every row of every table equal (identity ids included), rows in the
    access log, and the marker gone. Both runs start from emptied tables: the seed's random() draws follow the plans'
    row order, and the planner's row estimates (pg_class, kept even when an earlier test rolled back) would differ."""
    _empty_the_seeded_tables()
    counts = generate(seed=3, fraction=0.005, parallel=True)
    assert counts["build_access_log"] == 5_000
    assert _rows("SELECT to_regclass(%s)", [INCOMPLETE_MARKER]) == [(None,)]
    parallel = _checksums()
    _empty_the_seeded_tables()
    assert generate(seed=3, fraction=0.005, parallel=False) == counts
    assert _checksums() == parallel
    _empty_the_seeded_tables()
    generate(seed=4, fraction=0.005, parallel=True)
    assert _checksums()["build_access_log"] != parallel["build_access_log"]


@pytest.mark.django_db(transaction=True)
def test_seed_demo_loads_a_fresh_database_on_two_connections():
    """seed_demo outside any transaction takes the parallel path (its progress names the second connection)."""
    out = _Out()
    call_command("seed_demo", scale="six-months", seed=2, fraction=0.005, stdout=out)
    assert "(second connection)" in out.text
    assert _rows("SELECT count(*) FROM build_access_log") == [(5_000,)]


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broken", ["cache access log", "cache access counters"])
def test_a_failure_on_either_connection_leaves_nothing_behind(monkeypatch, broken):
    """The second connection failing (before its commit), or the first after the second committed: the error is
    raised, no table keeps a row and the marker is dropped, so the database can be seeded again."""
    _break_step(monkeypatch, broken)
    with pytest.raises(Exception, match="division by zero"):
        generate(seed=5, fraction=0.005, parallel=True)
    for table in TABLES:
        assert _rows(f"SELECT count(*) FROM {table}") == [(0,)], table
    assert _rows("SELECT to_regclass(%s)", [INCOMPLETE_MARKER]) == [(None,)]
    monkeypatch.undo()
    monkeypatch.setattr(seed, "seed_anchor", lambda: ANCHOR)
    assert generate(seed=5, fraction=0.005, parallel=True)["build_access_log"] == 5_000


@pytest.mark.django_db(transaction=True)
def test_a_parallel_load_into_a_database_with_rows_is_refused():
    """Its cleanup empties tables: a database that already holds rows gets the one-connection load (or an error)."""
    generate(seed=6, fraction=0.005, parallel=True)
    with pytest.raises(ValueError, match="fresh database"):
        generate(seed=7, fraction=0.005, parallel=True)


@pytest.mark.django_db(transaction=True)
def test_a_load_that_left_its_marker_is_refused():
    """A load killed before it could clean up leaves the marker: seed_demo refuses the database with a clear error."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {INCOMPLETE_MARKER} (scale text, seed bigint, started_at timestamptz)")
    with pytest.raises(CommandError, match="did not finish"):
        call_command("seed_demo", scale="ten-x", seed=1, fraction=0.005, stdout=_Out())
