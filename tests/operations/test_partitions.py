"""Monthly partitions (builds 0031, intake 0010): partitions ahead, the DEFAULT partition emptied, retention by
drop with the partial month cut in batches, and the conversion of a populated database while workers claim."""

import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.licensing.factories import LicenseFactory

PARTITIONED = {
    "build_events": "created_at",
    "build_metrics": "recorded_at",
    "build_logs": "created_at",
    "build_access_log": "accessed_at",
    "conversation_messages": "created_at",
}
BEFORE = [("builds", "0030_running_index"), ("intake", "0009_seed_model_prices")]
DIGEST = "sha256:" + "d" * 64


def _rows(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _maintain():
    out = StringIO()
    call_command("run_maintenance", "daily", "--only", "maintain_partitions", stdout=out)
    return out.getvalue()


def _insert_event(created_at_sql: str, n: int = 1):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO build_events (build_id, event_type, message, data, created_at)"
            f" SELECT gen_random_uuid(), 'test', 'm' || g, '{{}}', {created_at_sql} FROM generate_series(1, %s) g",
            [n],
        )


@pytest.mark.django_db(transaction=True)
def test_maintenance_creates_the_current_month_and_two_ahead_for_every_partitioned_table():
    """With next month's and the month after's partitions gone, the daily maintenance creates them again for every
    partitioned table, each with a DEFAULT partition; a second run creates nothing."""
    for table in PARTITIONED:
        _rows(
            "SELECT partition_drop_before(%s, date_trunc('month', now(), 'UTC') + interval '3 months', 1000)",
            [table],
        )
        assert not _rows("SELECT 1 FROM partition_bounds(%s) WHERE NOT is_default AND upper_bound > now()", [table]), (
            "the setup should leave no partition covering now"
        )
    assert "15 partitions created" in _maintain()
    for table in PARTITIONED:
        months = _rows(
            "SELECT m FROM generate_series(0, 2) m WHERE NOT EXISTS (SELECT 1 FROM partition_bounds(%s) b"
            " WHERE NOT b.is_default"
            " AND b.lower_bound <= date_trunc('month', now(), 'UTC') + make_interval(months => m)"
            " AND b.upper_bound >= date_trunc('month', now(), 'UTC') + make_interval(months => m + 1))",
            [table],
        )
        assert months == [], f"{table}: months ahead without a partition: {months}"
        assert _rows("SELECT count(*) FROM partition_bounds(%s) WHERE is_default", [table]) == [(1,)]
    assert "0 partitions created" in _maintain()


@pytest.mark.django_db(transaction=True)
def test_rows_in_the_default_partition_move_to_their_month_and_counters_do_not_change():
    """Rows dated where no partition exists land in DEFAULT; maintenance moves them into a new monthly partition
    (same ids and values), leaves DEFAULT empty, and the counters the triggers keep (cache access rollup,
    conversation stats) are not counted twice."""
    license = LicenseFactory()
    _insert_event("'2031-03-15 12:00+00'::timestamptz", 3)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO build_access_log (manifest_hash, customer_id, hit, latency_us, accessed_at)"
            " VALUES (repeat('a', 64), %s, false, 7, '2031-04-02 00:00+00')",
            [license.customer_id],
        )
    before = _rows("SELECT id, build_id, message, created_at FROM build_events ORDER BY id")
    rollup = _rows("SELECT sum(hits), sum(misses) FROM build_cache_access_rollup")
    assert _rows("SELECT count(*) FROM build_events_default") == [(3,)]
    assert _rows("SELECT count(*) FROM build_access_log_default") == [(1,)]
    # The lookup's row of the cache access rollup, partitioned by month too (builds 0041), is the fifth.
    assert _rows("SELECT count(*) FROM build_cache_access_rollup_default") == [(1,)]
    assert "5 rows moved out of DEFAULT" in _maintain()
    assert _rows("SELECT count(*) FROM build_cache_access_rollup_default") == [(0,)]
    assert _rows("SELECT count(*) FROM build_events_default") == [(0,)]
    assert _rows("SELECT count(*) FROM build_access_log_default") == [(0,)]
    assert _rows("SELECT id, build_id, message, created_at FROM build_events ORDER BY id") == before
    assert _rows("SELECT DISTINCT tableoid::regclass::text FROM build_events") == [("build_events_p203103",)]
    assert _rows("SELECT tableoid::regclass::text, latency_us FROM build_access_log") == [
        ("build_access_log_p203104", 7)
    ]
    assert _rows("SELECT sum(hits), sum(misses) FROM build_cache_access_rollup") == rollup
    assert _rows("SELECT DISTINCT tableoid::regclass::text FROM build_cache_access_rollup") == [
        ("build_cache_access_rollup_p203104",)
    ]


@pytest.mark.django_db(transaction=True)
def test_retention_drops_whole_old_months_and_cuts_the_partial_month_in_batches():
    """Events over eight months: cleanup_old_build_logs(90) first drops the partitions lying wholly before the
    cutoff, then deletes the partial month's old rows in batches of the given size; every row inside the window
    stays, month by month."""
    for days in (230, 200, 170, 140, 100, 91, 89, 60, 30, 1):
        _insert_event(f"now() - interval '{days} days' - interval '1 hour'", 3)
    _maintain()  # the old months leave DEFAULT for their own partitions
    assert _rows("SELECT count(*) FROM build_events_default") == [(0,)]
    cutoff_month = "date_trunc('month', now() - interval '90 days', 'UTC')"
    whole_old = [
        _rows(f"SELECT count(*) FROM {name}")[0][0]
        for (name,) in _rows(
            "SELECT partition::text FROM partition_bounds('build_events')"
            f" WHERE NOT is_default AND upper_bound <= {cutoff_month} ORDER BY upper_bound"
        )
    ]
    assert len(whole_old) >= 3
    per_month_kept = _rows(
        "SELECT date_trunc('month', created_at, 'UTC') m, count(*) FROM build_events"
        " WHERE created_at >= now() - interval '90 days' GROUP BY 1 ORDER BY 1"
    )
    old_rows = _rows("SELECT count(*) FROM build_events WHERE created_at < now() - interval '90 days'")[0][0]
    old_in_partial = _rows(
        f"SELECT count(*) FROM build_events WHERE created_at >= {cutoff_month}"
        " AND created_at < now() - interval '90 days'"
    )[0][0]
    calls = []
    while True:
        calls.append(_rows("SELECT cleanup_old_build_logs(90, 2)")[0][0])
        if calls[-1] == 0:
            break
    # One month dropped per call and table first, then the partial month two rows per batch.
    assert calls[: len(whole_old)] == whole_old
    assert calls[len(whole_old) : -1] == [2] * (old_in_partial // 2) + [old_in_partial % 2] * (old_in_partial % 2)
    assert sum(calls) == old_rows
    assert not _rows(
        f"SELECT partition FROM partition_bounds('build_events') WHERE NOT is_default AND upper_bound <= {cutoff_month}"
    )
    assert _rows("SELECT count(*) FROM build_events WHERE created_at < now() - interval '90 days'") == [(0,)]
    assert (
        _rows("SELECT date_trunc('month', created_at, 'UTC') m, count(*) FROM build_events GROUP BY 1 ORDER BY 1")
        == per_month_kept
    )


TOTALS = {
    "build_events": "count(*), sum(id), sum(length(message)), min(created_at), max(created_at)",
    "build_metrics": "count(*), sum(id), sum(value), min(recorded_at), max(recorded_at)",
    "build_logs": "count(*), sum(id), sum(length(chunk))",
    "build_access_log": "count(*), sum(id), sum(latency_us), count(*) FILTER (WHERE hit)",
    "conversation_messages": "count(*), sum(id), sum(prompt_tokens), sum(cost), min(created_at)",
}


def _totals(max_ids):
    return {
        table: _rows(f"SELECT {columns} FROM {table} WHERE id <= %s", [max_ids[table]])[0]
        for table, columns in TOTALS.items()
    }


@pytest.mark.django_db(transaction=True)
def test_conversion_of_a_populated_database_loses_nothing_while_a_worker_keeps_claiming():
    """Back before the partitions, seed data over six months; a worker on its own connection claims and completes
    builds (each writes build_events) all through the forward migration: the conversion loses no row (counts and
    sums per table equal), builds complete while it runs, and the old rows sit in the legacy partition."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    assert not _rows("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'build_events'::regclass")
    call_command("seed_demo", "--scale", "six-months", "--fraction", "0.01", "--seed", "3", stdout=StringIO())
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO build_logs (build_id, attempt, worker_id, chunk, created_at)"
            " SELECT gen_random_uuid(), 1, 'w', 'line ' || g, now() - g * interval '1 day'"
            " FROM generate_series(1, 150) g"
        )
    license = LicenseFactory(tier="enterprise")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO build_queue (customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit,"
            " progress, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds, cancel_requested, source)"
            " SELECT %s, %s, jsonb_build_object('n', g), encode(sha256(('p' || g)::bytea), 'hex'), 5, 'queued', false,"
            " 0, 0, 3, 3600, 120, false, 'test' FROM generate_series(1, 5000) g",
            [license.customer_id, license.pk],
        )
    max_ids = {table: _rows(f"SELECT coalesce(max(id), 0) FROM {table}")[0][0] for table in TOTALS}
    before = _totals(max_ids)
    assert before["build_events"][0] > 1000 and before["conversation_messages"][0] > 100

    stop = threading.Event()
    completed_at: list[float] = []
    errors: list[Exception] = []

    def worker():
        try:
            with connection.cursor() as cursor:
                while not stop.is_set():
                    cursor.execute("SELECT id FROM get_next_build_for_worker('partition-test')")
                    row = cursor.fetchone()
                    if row is None:
                        return
                    cursor.execute(
                        "SELECT complete_build(%s, 'partition-test', true, 'registry.example/app:1', %s, NULL)",
                        [row[0], DIGEST],
                    )
                    completed_at.append(time.monotonic())
        except Exception as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    MigrationExecutor(connection).migrate(leaves)
    finished = time.monotonic()
    time.sleep(0.3)
    stop.set()
    thread.join(60)

    assert not errors, errors
    during = [t for t in completed_at if started <= t <= finished]
    assert during, "no build completed while the conversion ran"
    assert any(t > finished for t in completed_at), "the worker stopped"
    assert _totals(max_ids) == before
    for table in PARTITIONED:
        assert _rows("SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [table]) == [(1,)]
        legacy = _rows(
            "SELECT count(*) FROM partition_bounds(%s) WHERE partition::text = %s", [table, table + "_legacy"]
        )
        assert legacy == [(1,)], table
    completed = _rows("SELECT count(*) FROM build_queue WHERE status = 'succeeded' AND license_id = %s", [license.pk])
    assert completed[0][0] == len(completed_at)
    # New rows take ids after the old ones (the identity sequence carried over).
    _insert_event("now()")
    assert _rows("SELECT max(id) FROM build_events")[0][0] > max_ids["build_events"]
    # Leave the layout of a fresh database for the tests that run after this one on the same database.
    for table in PARTITIONED:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table}")
        _rows("SELECT partition_drop_before(%s, 'infinity', 100)", [table])
        _rows("SELECT ensure_partitions(%s, 2)", [table])
