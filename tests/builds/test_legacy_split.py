"""Splitting a conversion's <table>_legacy partition into monthly partitions (builds 0034, run daily by
split_legacy_partitions): batches, resumable, writes to legacy during the copy kept, legacy dropped, nothing lost."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

TOTALS = {
    "build_events": "count(*), sum(id), sum(length(message)), min(created_at), max(created_at)",
    "build_access_log": "count(*), sum(id), sum(latency_us), count(*) FILTER (WHERE hit), max(accessed_at)",
}
COLUMN = {"build_events": "created_at", "build_access_log": "accessed_at"}


def _rows(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _split(settings, batch: int = 1000, budget: int = 0) -> str:
    settings.HONUA_MAINTENANCE_BATCH_SIZE = batch
    settings.HONUA_LEGACY_SPLIT_MAX_ROWS = budget
    out = StringIO()
    call_command("run_maintenance", "daily", "--only", "split_legacy_partitions", stdout=out)
    return out.getvalue()


def _layout(table):
    return _rows(
        "SELECT b.partition::text, b.lower_bound, b.upper_bound, c.relfilenode FROM partition_bounds(%s) b"
        " JOIN pg_class c ON c.oid = b.partition ORDER BY b.lower_bound NULLS LAST",
        [table],
    )


@pytest.fixture
def legacy(transactional_db):
    """build_events and build_access_log each with a populated <table>_legacy partition for (MINVALUE) .. this
    month, as the conversion leaves a populated database (builds 0031): five months of history in it."""
    for table, column in COLUMN.items():
        # A legacy partition left (empty) by a migration test that converted a populated table goes first.
        _rows(f"DROP TABLE IF EXISTS {table}_legacy, {table}_split")
        _rows("SELECT partition_drop_before(%s, date_trunc('month', now(), 'UTC'), 100)", [table])
        _rows("SELECT ensure_partitions(%s, 2)", [table])
        _rows(
            f"CREATE TABLE {table}_legacy (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
            f" ALTER TABLE {table}_legacy ADD PRIMARY KEY (id, {column});"
            f" ALTER TABLE {table} ATTACH PARTITION {table}_legacy"
            " FOR VALUES FROM (MINVALUE) TO (date_trunc('month', now(), 'UTC'))"
        )
    _rows(
        "INSERT INTO build_events (build_id, event_type, message, data, created_at)"
        " SELECT gen_random_uuid(), 'test', repeat('m', g %% 7), '{}', date_trunc('month', now(), 'UTC')"
        " - g * interval '3 hours' FROM generate_series(1, 1200) g"
    )
    _rows(
        "INSERT INTO build_access_log (manifest_hash, customer_id, hit, latency_us, accessed_at)"
        " SELECT repeat('a', 64), gen_random_uuid(), g %% 3 = 0, g, date_trunc('month', now(), 'UTC')"
        " - g * interval '2 hours' FROM generate_series(1, 1800) g"
    )
    yield
    for table in COLUMN:
        _rows(f"DROP TABLE IF EXISTS {table}_legacy, {table}_split")
        _rows(f"TRUNCATE {table}")
        _rows("SELECT partition_drop_before(%s, date_trunc('month', now(), 'UTC'), 100)", [table])


def test_split_moves_every_legacy_row_into_its_month_and_drops_legacy(legacy, settings):
    """The daily task copies legacy's rows into monthly partitions in batches and swaps them in: legacy is gone,
    every row is in the partition of its month (counts and sums equal), the counting triggers did not fire, the
    months have the parent's indexes and triggers and no leftover CHECK, and a second run changes nothing."""
    before = {table: _rows(f"SELECT {totals} FROM {table}") for table, totals in TOTALS.items()}
    rollup = _rows("SELECT sum(hits), sum(misses) FROM build_cache_access_rollup")
    out = _split(settings, batch=250)
    assert f"succeeded {1200 + 1800} row(s)" in out
    for table, totals in TOTALS.items():
        assert _rows("SELECT to_regclass(%s), to_regclass(%s)", [f"{table}_legacy", f"{table}_split"]) == [(None, None)]
        assert _rows(f"SELECT {totals} FROM {table}") == before[table]
        column = COLUMN[table]
        misplaced = _rows(
            f"SELECT count(*) FROM {table} t JOIN partition_bounds(%s) b ON b.partition = t.tableoid"
            f" WHERE b.is_default OR NOT (t.{column} >= b.lower_bound AND t.{column} < b.upper_bound)"
            " OR b.upper_bound <> b.lower_bound + interval '1 month'",
            [table],
        )
        assert misplaced == [(0,)]
        assert len(_layout(table)) >= 5 + 3 + 1  # five old months, this one and two ahead, DEFAULT
    assert _rows("SELECT sum(hits), sum(misses) FROM build_cache_access_rollup") == rollup
    month = _rows(
        "SELECT partition::text FROM partition_bounds('build_access_log') WHERE NOT is_default ORDER BY lower_bound"
    )[0][0]
    suffix = month.rsplit("_", 1)[1]
    assert sorted(name for (name,) in _rows("SELECT indexname FROM pg_indexes WHERE tablename = %s", [month])) == [
        f"build_access_accessed_brin_{suffix}",
        f"build_access_customer_idx_{suffix}",
        f"build_access_entry_idx_{suffix}",
        f"{month}_pkey",
    ]
    # Each row trigger of the parent (statement triggers are not cloned to partitions), as on any other month.
    triggers = "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE 'pgtrigger%%'"
    parent_row_triggers = _rows(triggers + " AND tgtype & 1 = 1", ["build_access_log"])[0][0]
    assert parent_row_triggers >= 3
    assert _rows(triggers, [month])[0][0] == parent_row_triggers
    assert not _rows("SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'", [month])

    layouts = {table: _layout(table) for table in COLUMN}
    assert "succeeded 0 row(s)" in _split(settings)
    assert {table: _layout(table) for table in COLUMN} == layouts


def test_split_resumes_and_keeps_what_changed_in_legacy_meanwhile(legacy, settings):
    """A run stopped by its row budget leaves legacy whole and visible; rows deleted, updated and inserted in legacy
    before the next run (already copied or not) end up exactly as legacy had them when the next run finishes."""
    out = _split(settings, batch=100, budget=700)
    assert "succeeded 700 row(s)" in out and "left for the next run: build_events" in out
    assert _rows("SELECT count(*) FROM build_events_legacy") == [(1200,)]
    assert _rows("SELECT count(*) FROM build_events") == [(1200,)]
    copied = _rows("SELECT max(id) FROM build_events_split")[0][0]
    # Retention deletes copied and uncopied rows; an old row is updated; a late row is inserted (new id).
    _rows("DELETE FROM build_events WHERE id %% 10 = 0")
    _rows("UPDATE build_events SET message = 'changed' WHERE id IN (%s, %s)", [copied - 5, copied + 5])
    _rows(
        "INSERT INTO build_events (build_id, event_type, message, data, created_at)"
        " VALUES (gen_random_uuid(), 'late', 'late', '{}', date_trunc('month', now(), 'UTC') - interval '40 days')"
    )
    expected = _rows("SELECT id, build_id, event_type, message, data::text, created_at FROM build_events ORDER BY id")
    assert "2 legacy partition(s) split" in _split(settings, batch=100)
    assert _rows("SELECT to_regclass('build_events_legacy')") == [(None,)]
    assert (
        _rows("SELECT id, build_id, event_type, message, data::text, created_at FROM build_events ORDER BY id")
        == expected
    )


def test_finish_refuses_a_copy_that_differs_and_changes_nothing(legacy, settings):
    """If the copy differs from legacy (here: a copied row removed behind the mirror's back), finishing raises a
    clear error and legacy stays attached with every row; with the copy dropped, the next run starts again."""
    _split(settings, batch=100, budget=100)
    _rows("SELECT partition_split_prepare('build_events')")
    while _rows("SELECT partition_split_copy('build_events', 500)")[0][0]:
        pass
    _rows("DELETE FROM build_events_split WHERE id = (SELECT min(id) FROM build_events_split)")
    with pytest.raises(Exception, match="the copy in build_events_split differs from build_events_legacy"):
        _rows("SELECT partition_split_finish('build_events')")
    assert _rows("SELECT count(*) FROM build_events_legacy") == [(1200,)]
    assert _rows("SELECT partition_legacy('build_events')::text") == [("build_events_legacy",)]
    # As the hint says: drop the copy. Legacy still takes deletes (the mirror trigger finds no copy to keep in
    # step), and the next run copies it again and finishes.
    _rows("DROP TABLE build_events_split")
    _rows("DELETE FROM build_events WHERE id = (SELECT min(id) FROM build_events)")
    expected = _rows("SELECT id, message, created_at FROM build_events ORDER BY id")
    assert "2 legacy partition(s) split" in _split(settings)
    assert _rows("SELECT id, message, created_at FROM build_events ORDER BY id") == expected
