"""The access-log archive by partition (operations 0004): a month wholly outside the retention moves from
build_access_log to build_access_log_archive by detach and attach (no row copied or deleted), the edge month and
build_access_log_legacy in batches, the file export drops whole archive months, and the archive's conversion."""

import csv
import datetime as dt
import gzip
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.builds.cache_factories import cached
from tests.builds.test_cache_month_rollup import ORACLE, VIEW
from tests.licensing.factories import LicenseFactory

TOTALS = "count(*), sum(id), sum(latency_us), count(*) FILTER (WHERE hit), min(accessed_at), max(accessed_at)"
CUTOFF = "now() - interval '90 days'"


def _rows(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _archive() -> str:
    out = StringIO()
    call_command("run_maintenance", "monthly", "--only", "archive_build_access_log", stdout=out)
    return out.getvalue()


def _fresh_layout():
    """Partitions left by earlier tests on this database (emptied by their flush) dropped: only the current month
    and those ahead stay, and the archive has none. A legacy partition left by a migration test that converted a
    populated table (its range reaches into next month) is dropped too."""
    _rows("DROP TABLE IF EXISTS build_access_log_legacy")
    _rows("SELECT partition_drop_before('build_access_log', date_trunc('month', now(), 'UTC'), 100)")
    _rows("SELECT ensure_partitions('build_access_log', 2)")
    _rows("SELECT partition_drop_before('build_access_log_archive', 'infinity', 100)")


def _accesses(customer_id, days_back: int, every_hours: int = 6):
    """One lookup every ``every_hours`` hours over the last ``days_back`` days, then into their month partitions."""
    _rows(
        "INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)"
        " SELECT repeat('a', 64), %s, NULL, g %% 3 = 0, g, now() - g * make_interval(hours => %s)"
        " FROM generate_series(1, %s) g",
        [customer_id, every_hours, days_back * 24 // every_hours],
    )
    call_command("run_maintenance", "daily", "--only", "maintain_partitions", stdout=StringIO())
    assert _rows("SELECT count(*) FROM build_access_log_default") == [(0,)]


def _rollup_matches_the_log() -> bool:
    """The cache access rollup counts exactly the lookups still in build_access_log (archived ones stop counting)."""
    return _rows("SELECT sum(hits), sum(misses) FROM build_cache_access_rollup") == _rows(
        "SELECT count(*) FILTER (WHERE hit), count(*) FILTER (WHERE NOT hit) FROM build_access_log"
    )


def _layout(table):
    """Each partition of ``table``: name, oid, relfilenode (a copy or rewrite would change the last)."""
    return _rows(
        "SELECT b.partition::text, b.partition::oid, c.relfilenode FROM partition_bounds(%s) b"
        " JOIN pg_class c ON c.oid = b.partition ORDER BY b.lower_bound NULLS LAST",
        [table],
    )


def _whole_months():
    return _rows(
        "SELECT partition::text, partition::oid, (SELECT relfilenode FROM pg_class WHERE oid = partition)"
        f" FROM access_log_archive_whole_months({CUTOFF})"
    )


def _drain(batch: int) -> list[int]:
    calls = []
    while True:
        calls.append(_rows("SELECT archive_build_access_log(90, %s)", [batch])[0][0])
        if calls[-1] == 0:
            return calls


@pytest.mark.django_db(transaction=True)
def test_whole_months_move_by_partition_and_the_edge_month_in_batches():
    """Lookups over seven months and an empty older month: each month wholly older than 90 days becomes the
    archive's partition of that month (same oid and relfilenode: no row copied, inserted or deleted), the edge
    month's old rows go in batches of the given size, the empty month is dropped, rows inside the window stay where
    they were, counts and sums equal, the cache access rollup counts exactly the lookups left in the log, and a
    second run changes nothing."""
    _fresh_layout()
    customer_id = LicenseFactory().customer_id
    _accesses(customer_id, 210)
    # An empty old month (created ahead for an import that never came): dropped, and the run goes on.
    _rows("SELECT partition_create_month('build_access_log', now() - interval '300 days')")
    empty = _whole_months()[0]
    whole = _whole_months()[1:]
    assert len(whole) >= 3
    whole_counts = [_rows(f'SELECT count(*) FROM "{name}"')[0][0] for name, _, _ in whole]
    before = _rows(f"SELECT {TOTALS} FROM build_access_log")
    old_before = _rows(f"SELECT {TOTALS} FROM build_access_log WHERE accessed_at < {CUTOFF}")
    kept = _rows(
        "SELECT id, accessed_at, latency_us, tableoid::regclass::text FROM build_access_log"
        f" WHERE accessed_at >= {CUTOFF} ORDER BY id"
    )
    edge_old = _rows(
        f"SELECT count(*) FROM build_access_log WHERE accessed_at < {CUTOFF}"
        f" AND accessed_at >= date_trunc('month', {CUTOFF}, 'UTC')"
    )[0][0]
    assert edge_old > 4

    calls = _drain(4)

    # One whole month per call, oldest first, then the edge month four rows at a time.
    assert calls[: len(whole)] == whole_counts
    assert calls[len(whole) : -1] == [4] * (edge_old // 4) + [edge_old % 4] * (edge_old % 4 > 0)
    moved = {oid: (name, node) for name, oid, node in _layout("build_access_log_archive")}
    for name, oid, node in whole:
        archived_name, archived_node = moved[oid]
        assert archived_name == name.replace("build_access_log_", "build_access_log_archive_")
        assert archived_node == node, f"{name} was rewritten or copied"
        assert _rows("SELECT n_tup_del FROM pg_stat_user_tables WHERE relid = %s", [oid]) in ([(0,)], [])
    assert _rows(f"SELECT count(*) FROM build_access_log WHERE accessed_at < {CUTOFF}") == [(0,)]
    assert _rows("SELECT to_regclass(%s)", [empty[0]]) == [(None,)]
    assert empty[1] not in moved
    assert _rows(f"SELECT {TOTALS} FROM build_access_log_archive") == old_before
    assert (
        _rows(
            f"SELECT {TOTALS} FROM (SELECT * FROM build_access_log UNION ALL"
            " SELECT id, manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at"
            " FROM build_access_log_archive) every_row"
        )
        == before
    )
    assert (
        _rows(
            "SELECT id, accessed_at, latency_us, tableoid::regclass::text FROM build_access_log"
            f" WHERE accessed_at >= {CUTOFF} ORDER BY id"
        )
        == kept
    )
    assert _rollup_matches_the_log()
    # The moved months have the archive's shape: its primary key and BRIN index, nothing of the live table's.
    name = whole[0][0].replace("build_access_log_", "build_access_log_archive_")
    indexes = _rows("SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [name])
    assert sorted(definition.split(" USING ")[1] for (definition,) in indexes) == [
        "brin (accessed_at)",
        "btree (id, accessed_at)",
    ]
    assert not _rows("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'", [name])

    # A second run is a no-op: nothing archived, no partition of either table changed.
    layouts = (_layout("build_access_log"), _layout("build_access_log_archive"))
    assert "succeeded 0 row(s)" in _archive()
    assert (_layout("build_access_log"), _layout("build_access_log_archive")) == layouts


@pytest.mark.django_db(transaction=True)
def test_the_monthly_report_times_the_whole_months_apart_from_the_edge_month():
    """The task's report says how many whole months it moved by partition and how many rows of the edge month it
    moved in batches, each with its own time: retention by partition is judged on the first, which must not grow
    with what a month holds."""
    _fresh_layout()
    customer_id = LicenseFactory().customer_id
    _accesses(customer_id, 150)
    whole = len(_whole_months())
    assert whole >= 1
    edge_old = _rows(
        f"SELECT count(*) FROM build_access_log WHERE accessed_at < {CUTOFF}"
        f" AND accessed_at >= date_trunc('month', {CUTOFF}, 'UTC')"
    )[0][0]
    assert edge_old > 0
    report = _archive()
    assert re.search(rf"{whole} whole month\(s\) validated in \d+ ms and moved in \d+ ms", report), report
    assert re.search(rf"{edge_old:,} edge row\(s\) in batches in \d+ ms", report), report
    assert _rows(f"SELECT count(*) FROM build_access_log WHERE accessed_at < {CUTOFF}") == [(0,)]


@pytest.mark.django_db(transaction=True)
def test_a_month_whose_edge_was_archived_last_time_moves_whole_with_those_rows():
    """The edge month archived in part by one run is moved whole by the next (when it lies wholly outside the
    window): the rows archived before join the month's partition, which keeps its relfilenode; nothing is lost
    or doubled, and the rollup does not count the rejoined rows again."""
    _fresh_layout()
    customer_id = LicenseFactory().customer_id
    _accesses(customer_id, 150)
    assert sum(_drain(1000)) > 0  # the run "a month ago" leaves the edge month of 90 days in the archive, in part
    edge = _rows(
        "SELECT partition::text, partition::oid, lower_bound FROM partition_bounds('build_access_log')"
        f" WHERE lower_bound = date_trunc('month', {CUTOFF}, 'UTC')"
    )[0]
    in_archive = _rows(f"SELECT {TOTALS} FROM build_access_log_archive WHERE accessed_at >= %s", [edge[2]])
    assert in_archive[0][0] > 0
    totals = _rows(
        f"SELECT {TOTALS} FROM (SELECT id, latency_us, hit, accessed_at FROM build_access_log WHERE accessed_at >= %s"
        " AND accessed_at < %s + interval '1 month' UNION ALL SELECT id, latency_us, hit, accessed_at"
        " FROM build_access_log_archive WHERE accessed_at >= %s) month",
        [edge[2], edge[2], edge[2]],
    )
    node = _rows("SELECT relfilenode FROM pg_class WHERE oid = %s", [edge[1]])

    # A month later the edge month lies wholly outside the window (55 days stands in for 90 a month on).
    moved = _rows("SELECT archive_build_access_log(55, 1000)")[0][0]
    assert moved == totals[0][0] - in_archive[0][0]
    archived = _rows(
        "SELECT partition::oid FROM partition_bounds('build_access_log_archive') WHERE lower_bound = %s", [edge[2]]
    )
    assert archived == [(edge[1],)]
    assert _rows("SELECT relfilenode FROM pg_class WHERE oid = %s", [edge[1]]) == node
    assert (
        _rows(
            f"SELECT {TOTALS} FROM build_access_log_archive"
            " WHERE accessed_at >= %s AND accessed_at < %s + interval '1 month'",
            [edge[2], edge[2]],
        )
        == totals
    )
    assert _rollup_matches_the_log()


def _legacy(table: str, column: str, bound: str) -> None:
    """A ``<table>_legacy`` partition for (MINVALUE) .. ``bound``, as the conversion leaves on a populated
    database (builds 0031)."""
    _rows(
        f"CREATE TABLE {table}_legacy (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
        f" ALTER TABLE {table}_legacy ADD PRIMARY KEY (id, {column});"
        f" ALTER TABLE {table} ATTACH PARTITION {table}_legacy FOR VALUES FROM (MINVALUE) TO ({bound})"
    )


@pytest.mark.django_db(transaction=True)
def test_rows_older_than_the_window_in_the_legacy_partition_are_archived_in_batches():
    """Rows in build_access_log_legacy older than the window go to the archive in batches (the legacy partition is
    not a month: it cannot move whole); its rows inside the window stay, and nothing is lost."""
    _fresh_layout()
    _legacy("build_access_log", "accessed_at", "date_trunc('month', now(), 'UTC')")
    customer_id = LicenseFactory().customer_id
    _rows(
        "INSERT INTO build_access_log (manifest_hash, customer_id, hit, latency_us, accessed_at)"
        " SELECT repeat('b', 64), %s, true, g, now() - g * interval '1 day' FROM generate_series(1, 130) g"
        " WHERE now() - g * interval '1 day' < date_trunc('month', now(), 'UTC')",
        [customer_id],
    )
    try:
        assert _rows("SELECT count(*) FROM build_access_log_legacy")[0][0] > 40
        old = _rows(f"SELECT {TOTALS} FROM build_access_log WHERE accessed_at < {CUTOFF}")
        kept = _rows(f"SELECT id FROM build_access_log_legacy WHERE accessed_at >= {CUTOFF} ORDER BY id")
        calls = _drain(7)
        assert calls[:-1] == [7] * (old[0][0] // 7) + [old[0][0] % 7] * (old[0][0] % 7 > 0)
        assert _rows(f"SELECT {TOTALS} FROM build_access_log_archive") == old
        assert _rows("SELECT id FROM build_access_log_legacy ORDER BY id") == kept
        # The archive got month partitions for the legacy rows, as a batch needs them.
        assert (
            _rows(
                "SELECT count(*) FROM partition_bounds('build_access_log_archive')"
                " WHERE upper_bound = lower_bound + interval '1 month'"
            )[0][0]
            >= 2
        )
    finally:
        _rows("DROP TABLE build_access_log_legacy")


def _file_rows(path):
    with gzip.open(path, "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "manifest_hash", "customer_id", "cache_entry_id", "hit", "latency_us", "accessed_at"]
    return rows[1:]


@pytest.mark.django_db(transaction=True)
def test_file_mode_writes_each_archived_month_and_drops_its_partition(tmp_path, settings):
    """File mode: each month moved whole to the archive is written to its gzip CSV (every row of the month, with
    its values) and its archive partition is dropped; the archive is left with no partition and no row."""
    settings.HONUA_ACCESS_LOG_ARCHIVE = "file"
    settings.HONUA_ACCESS_LOG_ARCHIVE_DIR = str(tmp_path)
    _fresh_layout()
    _accesses(LicenseFactory().customer_id, 160, every_hours=12)
    months = _rows(
        "SELECT to_char(date_trunc('month', accessed_at, 'UTC'), 'YYYY-MM'), array_agg(id ORDER BY id),"
        f" sum(latency_us) FROM build_access_log WHERE accessed_at < {CUTOFF} GROUP BY 1 ORDER BY 1"
    )
    assert len(months) >= 3
    assert "archived to" in _archive()
    assert _rows("SELECT count(*) FROM build_access_log_archive") == [(0,)]
    assert _layout("build_access_log_archive") == []
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"build_access_log-{m}.csv.gz" for m, _, _ in months]
    for month, ids, latency in months:
        rows = _file_rows(tmp_path / f"build_access_log-{month}.csv.gz")
        assert [int(row[0]) for row in rows] == ids
        assert sum(int(row[5]) for row in rows) == latency
        assert {row[6][:7] for row in rows} == {month}


@pytest.mark.django_db(transaction=True)
def test_the_archive_conversion_keeps_every_row_of_a_populated_archive():
    """Back before operations 0004, a plain archive holding months of rows; the forward migration makes it
    partitioned with those rows in build_access_log_archive_legacy (counts and sums equal), bounded by the month
    after the newest, so the next months can be attached whole; the migration back keeps them too."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([("operations", "0003_archive_plural")])
    assert not _rows("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'build_access_log_archive'::regclass")
    _rows(
        "INSERT INTO build_access_log_archive (id, manifest_hash, customer_id, hit, latency_us, accessed_at)"
        " SELECT g, repeat('c', 64), gen_random_uuid(), g %% 2 = 0, g,"
        " now() - interval '95 days' - g * interval '1 hour'"
        " FROM generate_series(1, 3000) g"
    )
    before = _rows(f"SELECT {TOTALS}, sum(extract(epoch FROM archived_at)) FROM build_access_log_archive")
    MigrationExecutor(connection).migrate(leaves)
    assert _rows("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'build_access_log_archive'::regclass") == [(1,)]
    assert _rows(f"SELECT {TOTALS}, sum(extract(epoch FROM archived_at)) FROM build_access_log_archive") == before
    assert _rows("SELECT count(*) FROM build_access_log_archive_legacy") == [(3000,)]
    assert _rows(
        "SELECT upper_bound = date_trunc('month', now() - interval '95 days' - interval '1 hour', 'UTC')"
        " + interval '1 month' FROM partition_bounds('build_access_log_archive') WHERE lower_bound = '-infinity'"
    ) == [(True,)]
    MigrationExecutor(connection).loader.build_graph()
    executor = MigrationExecutor(connection)
    executor.migrate([("operations", "0003_archive_plural")])
    assert _rows(f"SELECT {TOTALS}, sum(extract(epoch FROM archived_at)) FROM build_access_log_archive") == before
    MigrationExecutor(connection).migrate(leaves)
    _rows("TRUNCATE build_access_log_archive")
    _rows("DROP TABLE build_access_log_archive_legacy")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fold_first", [True, False])
def test_a_pair_whose_lookups_were_all_in_a_moved_month_leaves_the_rollup(fold_first):
    """A customer whose every lookup is in a month that moves whole counts nothing afterwards, and its rollup row
    goes: at once when the row was folded before the move, at the next fold when its lookups were still in a
    session shard. Nothing is left counting zero, and the rollup still equals the log."""
    _fresh_layout()
    stays, leaves = LicenseFactory().customer_id, LicenseFactory().customer_id
    _accesses(stays, 30)
    _rows(
        "INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)"
        " SELECT repeat('b', 64), %s, NULL, g %% 2 = 0, g, date_trunc('month', now() - interval '200 days', 'UTC')"
        " + g * interval '1 hour' FROM generate_series(1, 20) g",
        [leaves],
    )
    call_command("run_maintenance", "daily", "--only", "maintain_partitions", stdout=StringIO())
    if fold_first:
        _rows("SELECT fold_cache_access_rollup()")
    _drain(1000)
    _rows("SELECT fold_cache_access_rollup()")
    assert _rows("SELECT count(*) FROM build_cache_access_rollup WHERE customer_id = %s", [leaves]) == [(0,)]
    assert _rows("SELECT count(*) FROM build_cache_access_rollup WHERE hits = 0 AND misses = 0") == [(0,)]
    # One folded row per month of its lookups (builds.0041_cache_month_rollup keeps the rollup per month).
    assert _rows("SELECT count(*) FROM build_cache_access_rollup WHERE customer_id = %s", [stays]) == _rows(
        "SELECT count(DISTINCT date_trunc('month', accessed_at, 'UTC')) FROM build_access_log WHERE customer_id = %s",
        [stays],
    )
    assert _rollup_matches_the_log()


def _month_share(month) -> dict:
    """Each customer's lookups, hits, misses and time saved (at the entries' current durations) in ``month``."""
    return {
        customer: (lookups, hits, misses, saved)
        for customer, lookups, hits, misses, saved in _rows(
            "SELECT a.customer_id::text, count(*), count(*) FILTER (WHERE a.hit), count(*) FILTER (WHERE NOT a.hit),"
            " coalesce(sum(e.build_duration_ms) FILTER (WHERE a.hit), 0)"
            " FROM build_access_log a LEFT JOIN build_cache_registry e ON e.id = a.cache_entry_id"
            " WHERE a.accessed_at >= %s AND a.accessed_at < %s + interval '1 month' GROUP BY 1",
            [month, month],
        )
    }


def _statistics() -> dict:
    return {
        key: rest
        for key, *rest in _rows(
            "SELECT id, lookups, hits, misses, time_saved_ms, entries, shared_entries, bytes_stored"
            " FROM cache_statistics"
        )
    }


@pytest.mark.django_db(transaction=True)
def test_a_month_moved_whole_takes_exactly_its_share_out_of_cache_statistics():
    """Two customers' hits and misses over seven months, folded in part: moving the oldest month whole removes
    from cache_statistics exactly that month's lookups, hits, misses and time saved of each customer (and of the
    overall row), nothing else (storage, other months); the rollup's partition of that month is dropped, no rollup
    row of it is left, and the view still equals the oracle computed from the log."""
    _fresh_layout()
    customers = [LicenseFactory(tier="pro").customer_id for _ in range(2)]
    entry = cached(LicenseFactory(tier="enterprise"), duration=dt.timedelta(seconds=7))
    for i, customer in enumerate(customers):
        _rows(
            "INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)"
            " SELECT repeat('a', 64), %s, CASE WHEN g %% 3 = 0 THEN %s::uuid END, g %% 3 = 0, g,"
            " now() - g * make_interval(hours => %s) FROM generate_series(1, 200) g",
            [customer, entry.pk, 23 + i],
        )
    call_command("run_maintenance", "daily", "--only", "maintain_partitions", stdout=StringIO())
    _rows("SELECT fold_cache_access_rollup()")
    _rows(  # more lookups of the oldest month, left in a session shard
        "INSERT INTO build_access_log (manifest_hash, customer_id, cache_entry_id, hit, latency_us, accessed_at)"
        " SELECT repeat('b', 64), %s, %s, true, 1, (SELECT min(accessed_at) FROM build_access_log)"
        " FROM generate_series(1, 3)",
        [customers[0], entry.pk],
    )
    [(partition, month)] = _rows(
        f"SELECT partition::text, lower_bound FROM access_log_archive_whole_months({CUTOFF})"
        " WHERE EXISTS (SELECT 1 FROM build_access_log WHERE accessed_at >= lower_bound"
        " AND accessed_at < upper_bound) ORDER BY lower_bound LIMIT 1"
    )
    share = _month_share(month)
    assert set(share) == {str(c) for c in customers} and share[str(customers[0])][1] > 3
    before = _statistics()
    other_months = _rows(
        "SELECT month, customer_id, cache_entry_id, shard, hits, misses FROM build_cache_access_rollup"
        " WHERE month <> %s ORDER BY 1, 2, 3, 4",
        [month],
    )
    rollup_month = _rows(
        "SELECT partition::text FROM partition_bounds('build_cache_access_rollup') WHERE lower_bound = %s", [month]
    )
    assert rollup_month

    moved = _rows("SELECT archive_build_access_log(90, 1000)")[0][0]

    assert moved == sum(lookups for lookups, _, _, _ in share.values())
    assert _rows("SELECT to_regclass(%s)", [partition]) == [(None,)]
    after = _statistics()
    expected = dict(before)
    for customer, (lookups, hits, misses, saved) in share.items():
        row = before[customer]
        expected[customer] = [row[0] - lookups, row[1] - hits, row[2] - misses, row[3] - saved, *row[4:]]
    totals = [sum(column) for column in zip(*share.values(), strict=True)]
    row = before["overall"]
    expected["overall"] = [row[0] - totals[0], row[1] - totals[1], row[2] - totals[2], row[3] - totals[3], *row[4:]]
    assert after == expected
    assert _rows("SELECT to_regclass(%s)", [rollup_month[0][0]]) == [(None,)]
    assert _rows("SELECT count(*) FROM build_cache_access_rollup WHERE month = %s", [month]) == [(0,)]
    assert _rows("SELECT count(*) FROM build_cache_access_monthly WHERE month = %s", [month]) == [(0,)]
    assert (
        _rows(
            "SELECT month, customer_id, cache_entry_id, shard, hits, misses FROM build_cache_access_rollup"
            " WHERE month <> %s ORDER BY 1, 2, 3, 4",
            [month],
        )
        == other_months
    )
    assert sorted(_rows(VIEW)) == sorted(_rows(ORACLE))
    # The other old months are left in the log: dropped, so that a later test on this database does not find its
    # old rows' month there already (its rows would move whole, not in the batches it expects).
    _fresh_layout()
