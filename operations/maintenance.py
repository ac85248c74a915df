"""Cross-app maintenance tasks (run by ``run_maintenance``; the SQL they call is in builds/sql and operations/sql).

daily: ``maintain_partitions``, ``split_legacy_partitions``;
weekly: ``cleanup_old_build_logs``, ``vacuum_analyze``, ``index_bloat_report``;
monthly: ``archive_build_access_log``, ``purge_soft_deleted_records``.
"""

import csv
import gzip
import heapq
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from honua.maintenance_runner import maintenance_lock_timeout
from honua.registry import TaskResult, maintenance_task

# Tables whose rows are updated or deleted often: VACUUM (ANALYZE) them weekly.
HIGH_CHURN_TABLES = (
    "build_queue",
    "build_results",
    "build_events",
    "build_metrics",
    "build_cache_registry",
    "build_access_log",
    "build_access_log_archive",
    "conversations",
    "conversation_messages",
    "licenses",
    "registry_credentials",
)
ARCHIVE_COLUMNS = ("id", "manifest_hash", "customer_id", "cache_entry_id", "hit", "latency_us", "accessed_at")
NEGATIVE_RETENTION = "{name} must be zero or more days, got {value}"
BAD_ARCHIVE_MODE = "HONUA_ACCESS_LOG_ARCHIVE must be 'table' or 'file', got {value!r}"
# The tables partitioned by month (builds 0031, intake 0010) and the months created ahead of the current one.
PARTITIONED_TABLES = ("build_events", "build_metrics", "build_logs", "build_access_log", "conversation_messages")
PARTITION_MONTHS_AHEAD = 2
# Partitioned by month too, but with no history of their own to convert: months created ahead and DEFAULT drained
# like the tables above (the cache access rollup, builds 0041, whose month an archived month's drop removes).
ROLLUP_PARTITIONED_TABLES = ("build_cache_access_rollup",)
# The tables whose conversion may have left a <table>_legacy partition (builds 0031, intake 0010, operations 0004).
LEGACY_TABLES = (*PARTITIONED_TABLES, "build_access_log_archive")
# An index is worth a REINDEX CONCURRENTLY when at least this share of it, and this many bytes, is bloat.
BLOAT_MIN_RATIO = 0.3
BLOAT_MIN_BYTES = 8 * 1024 * 1024


def _days(name: str) -> int:
    value = int(getattr(settings, name))
    if value < 0:
        raise ValueError(NEGATIVE_RETENTION.format(name=name, value=value))
    return value


def _scalar(sql: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] or 0


def drain(function: str, days: int, *, more: Callable[[], bool] | None = None) -> int:
    """Call the batch function ``function(days, batch_size)`` until it returns 0 (or, with ``more``, until
    ``more()`` is false before a call), one transaction per batch.

    A kill between batches loses nothing (each batch committed or rolled back whole), and the next run carries
    on where this one stopped. ``HONUA_MAINTENANCE_BATCH_PAUSE_MS`` lets a busy system breathe between batches.
    """
    batch_size = int(settings.HONUA_MAINTENANCE_BATCH_SIZE)
    pause = int(settings.HONUA_MAINTENANCE_BATCH_PAUSE_MS) / 1000
    total = 0
    while more is None or more():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
            cursor.execute(f"SELECT {function}(%s, %s)", [days, batch_size])
            changed = cursor.fetchone()[0]
        total += changed
        if changed == 0:
            return total
        if pause:
            time.sleep(pause)
    return total


@maintenance_task(
    "cleanup_old_build_logs",
    schedule="weekly",
    description="Delete build events and metrics, and empty build result logs, older than the retention (90 days).",
    transactional=False,
)
def cleanup_old_build_logs(*, dry_run: bool) -> TaskResult:
    days = _days("HONUA_BUILD_LOG_RETENTION_DAYS")
    if dry_run:
        cutoff = "now() - make_interval(days => %s)"
        rows = _scalar(
            f"SELECT (SELECT count(*) FROM build_events WHERE created_at < {cutoff})"
            f" + (SELECT count(*) FROM build_metrics WHERE recorded_at < {cutoff})"
            f" + (SELECT count(*) FROM build_results WHERE created_at < {cutoff} AND log <> '')",
            [days, days, days],
        )
    else:
        rows = drain("cleanup_old_build_logs", days)
    return TaskResult(rows, f"older than {days} days")


@maintenance_task(
    "maintain_partitions",
    schedule="daily",
    description="Create the monthly partitions of the current month and the next two, move stray rows out of "
    "each DEFAULT partition (one month per transaction), and drop the access log's emptied months.",
    transactional=False,
)
def maintain_partitions(*, dry_run: bool) -> TaskResult:
    """``ensure_partitions`` and ``partition_drain_default`` for every partitioned table, each step its own short
    transaction with the maintenance lock_timeout (resumable: a killed run leaves every row in one partition).
    Rows = partitions created + rows moved out of the DEFAULT partitions + access-log partitions dropped (only
    months the archive has already emptied and that lie wholly before the access log's retention)."""
    access_days = _days("HONUA_ACCESS_LOG_RETENTION_DAYS")
    created = moved = 0
    if dry_run:
        for table in (*PARTITIONED_TABLES, *ROLLUP_PARTITIONED_TABLES):
            moved += _scalar(f"SELECT count(*) FROM {table}_default")
        return TaskResult(moved, f"would move {moved} rows out of the DEFAULT partitions")
    for table in (*PARTITIONED_TABLES, *ROLLUP_PARTITIONED_TABLES):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
            cursor.execute("SELECT ensure_partitions(%s, %s)", [table, PARTITION_MONTHS_AHEAD])
            created += cursor.fetchone()[0]
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
                cursor.execute("SELECT partition_drain_default(%s)", [table])
                rows = cursor.fetchone()[0]
            moved += rows
            if rows == 0:
                break
    emptied = (
        "SELECT count(*) FROM partition_bounds('build_access_log') b WHERE NOT b.is_default"
        " AND b.upper_bound <= now() - make_interval(days => %s)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
        cursor.execute(emptied, [access_days])
        before = cursor.fetchone()[0]
        cursor.execute(
            "SELECT partition_drop_before('build_access_log', now() - make_interval(days => %s), 1000, true)",
            [access_days],
        )
        cursor.execute(emptied, [access_days])
        dropped = before - cursor.fetchone()[0]
    return TaskResult(
        created + moved + dropped,
        f"{created} partitions created, {moved} rows moved out of DEFAULT, {dropped} emptied access-log months dropped",
    )


@maintenance_task(
    "split_legacy_partitions",
    schedule="daily",
    description="Copy the rows of each <table>_legacy partition into monthly partitions in batches; once the copy "
    "has caught up, swap the months in for legacy in one short transaction and drop legacy.",
    transactional=False,
)
def split_legacy_partitions(*, dry_run: bool) -> TaskResult:
    """``partition_split_prepare``, then ``partition_split_copy`` batch by batch (each its own transaction with the
    maintenance lock_timeout; at most ``HONUA_LEGACY_SPLIT_MAX_ROWS`` rows a run, the next run resumes after the
    highest id copied), then ``partition_split_finish`` when a table's copy has caught up. Rows = rows copied."""
    batch_size = int(settings.HONUA_MAINTENANCE_BATCH_SIZE)
    budget = int(settings.HONUA_LEGACY_SPLIT_MAX_ROWS) or None
    legacies = []
    with connection.cursor() as cursor:
        for table in LEGACY_TABLES:
            cursor.execute("SELECT partition_legacy(%s)::text", [table])
            legacy = cursor.fetchone()[0]
            if legacy is not None:
                legacies.append((table, legacy))
    if dry_run:
        rows = sum(_scalar(f'SELECT count(*) FROM "{legacy}"') for _, legacy in legacies)
        return TaskResult(rows, f"would split {len(legacies)} legacy partition(s)")
    copied = months = 0
    unfinished = []
    for table, _legacy in legacies:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
            cursor.execute("SELECT partition_split_prepare(%s)", [table])
        while True:
            if budget is not None and copied >= budget:
                break
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
                size = batch_size if budget is None else min(batch_size, budget - copied)
                cursor.execute("SELECT partition_split_copy(%s, %s)", [table, size])
                rows = cursor.fetchone()[0]
            copied += rows
            if rows == 0:
                break
        if budget is not None and copied >= budget:
            unfinished.append(table)
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
            cursor.execute("SELECT partition_split_finish(%s)", [table])
            months += cursor.fetchone()[0]
    left = f"; left for the next run: {', '.join(unfinished)}" if unfinished else ""
    return TaskResult(copied, f"{len(legacies) - len(unfinished)} legacy partition(s) split into {months} months{left}")


@maintenance_task(
    "purge_soft_deleted_records",
    schedule="monthly",
    description="Permanently delete rows soft-deleted more than 30 days ago (customers and licenses once unused).",
    transactional=False,
)
def purge_soft_deleted_records(*, dry_run: bool) -> TaskResult:
    days = _days("HONUA_SOFT_DELETE_RETENTION_DAYS")
    if dry_run:
        # Exact counts need the function's own rules: run it for every batch inside one rolled-back savepoint.
        with transaction.atomic():
            rows = _scalar("SELECT purge_soft_deleted_records(%s, %s)", [days, 2**31 - 1])
            transaction.set_rollback(True)
    else:
        rows = drain("purge_soft_deleted_records", days)
    return TaskResult(rows, f"soft-deleted more than {days} days ago")


@maintenance_task(
    "vacuum_analyze",
    schedule="weekly",
    description="VACUUM (ANALYZE) the high-churn tables (skipping any a session holds locked).",
    transactional=False,
)
def vacuum_analyze(*, dry_run: bool) -> TaskResult:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE schemaname = current_schema()"
            " AND relname = ANY(%s) ORDER BY relname",
            [list(HIGH_CHURN_TABLES)],
        )
        dead = dict(cursor.fetchall())
        tables = [table for table in HIGH_CHURN_TABLES if table in dead]
        if not dry_run:
            for table in tables:
                cursor.execute(f'VACUUM (ANALYZE, SKIP_LOCKED) "{table}"')
    verb = "would vacuum" if dry_run else "vacuumed"
    return TaskResult(sum(dead.values()), f"{verb} {len(tables)} tables; rows = dead row versions before")


@maintenance_task(
    "index_bloat_report",
    schedule="weekly",
    description="Estimate index bloat from the catalog statistics; list indexes worth a REINDEX CONCURRENTLY.",
)
def index_bloat_report(*, dry_run: bool) -> TaskResult:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT index_name, bloat_bytes, bloat_ratio FROM index_bloat_estimate()"
            " WHERE bloat_ratio >= %s AND bloat_bytes >= %s",
            [BLOAT_MIN_RATIO, BLOAT_MIN_BYTES],
        )
        worth = cursor.fetchall()
    advice = "; ".join(
        f"REINDEX INDEX CONCURRENTLY {name} (~{ratio:.0%}, {bloat // 1048576} MB)" for name, bloat, ratio in worth
    )
    return TaskResult(len(worth), advice or "no index worth rebuilding")


def _archive_mode() -> str:
    mode = settings.HONUA_ACCESS_LOG_ARCHIVE
    if mode not in ("table", "file"):
        raise ValueError(BAD_ARCHIVE_MODE.format(value=mode))
    return mode


@maintenance_task(
    "archive_build_access_log",
    schedule="monthly",
    description="Move build_access_log rows older than the retention (90 days) to the archive table (a month "
    "wholly older by partition, the edge month in batches), then (file mode) to one gzip CSV per month.",
    transactional=False,
)
def archive_build_access_log(*, dry_run: bool) -> TaskResult:
    days = _days("HONUA_ACCESS_LOG_RETENTION_DAYS")
    mode = _archive_mode()
    if dry_run:
        rows = _scalar(
            "SELECT count(*) FROM build_access_log WHERE accessed_at < now() - make_interval(days => %s)", [days]
        )
        return TaskResult(rows, f"would archive to the {mode}")
    started = time.perf_counter()
    months = prepare_whole_months(days)
    validated = time.perf_counter()
    # The whole months first (each call moves one by partition), then the edge month in batches: timed apart, as
    # retention by partition is meant to take a moment whatever a month holds, and the batches grow with the edge.
    whole = drain("archive_build_access_log", days, more=lambda: _whole_months_left(days))
    moved = time.perf_counter()
    edge = drain("archive_build_access_log", days)
    done = time.perf_counter()
    rows = whole + edge
    timings = (
        f"{months} whole month(s) validated in {(validated - started) * 1000:.0f} ms and moved in"
        f" {(moved - validated) * 1000:.0f} ms, {edge:,} edge row(s) in batches in {(done - moved) * 1000:.0f} ms"
    )
    if mode == "table":
        return TaskResult(rows, f"archived to build_access_log_archive: {timings}")
    directory = Path(settings.HONUA_ACCESS_LOG_ARCHIVE_DIR)
    files = export_archive_to_files(directory)
    return TaskResult(rows, f"archived to {len(files)} file(s) in {directory}: {timings}")


def _whole_months_left(days: int) -> bool:
    """Whether a month of build_access_log lies wholly before the retention's cutoff (and so moves by partition)."""
    return bool(
        _scalar(
            "SELECT count(*) FROM access_log_archive_whole_months(now() - make_interval(days => %s))",
            [days],
        )
    )


def prepare_whole_months(days: int) -> int:
    """Give each month of build_access_log that will move to the archive whole its CHECK constraint (NOT VALID, a
    short transaction) and validate it in a transaction of its own: a scan under SHARE UPDATE EXCLUSIVE, which lets
    readers and writers go on. The move (``archive_build_access_log``) then changes only the catalog while it holds
    build_access_log's lock. Returns how many months were validated."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT partition::text, access_log_archive_bound_name(partition)"
            " FROM access_log_archive_whole_months(now() - make_interval(days => %s))",
            [days],
        )
        months = cursor.fetchall()
    for partition, check in months:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
            cursor.execute("SELECT access_log_archive_add_bound(%s)", [partition])
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
            cursor.execute(f'ALTER TABLE "{partition}" VALIDATE CONSTRAINT "{check}"')
    return len(months)


def archive_file(directory: Path, month: datetime) -> Path:
    return directory / f"build_access_log-{month:%Y-%m}.csv.gz"


def _file_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    if not path.exists():
        return
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)  # header
        for row in reader:
            yield int(row[0]), row


def _archive_months() -> list[tuple[datetime, str | None]]:
    """The archived months, oldest first, each with its partition when the archive holds it as one whole month
    partition (None: the month's rows lie in a partition covering more, the archive's legacy partition)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lower_bound AT TIME ZONE 'UTC', partition::text FROM partition_bounds('build_access_log_archive')"
            " WHERE lower_bound > '-infinity' AND upper_bound = lower_bound + interval '1 month'"
            " AND lower_bound = date_trunc('month', lower_bound, 'UTC')"
        )
        whole = dict(cursor.fetchall())
        cursor.execute(
            "SELECT partition::text FROM partition_bounds('build_access_log_archive') b"
            " WHERE b.lower_bound = '-infinity' OR b.upper_bound <> b.lower_bound + interval '1 month'"
            " OR b.lower_bound <> date_trunc('month', b.lower_bound, 'UTC')"
        )
        wider = [row[0] for row in cursor.fetchall()]
        spread: set[datetime] = set()
        for partition in wider:
            cursor.execute(f"SELECT DISTINCT date_trunc('month', accessed_at AT TIME ZONE 'UTC') FROM \"{partition}\"")
            spread.update(row[0] for row in cursor.fetchall())
    months: dict[datetime, str | None] = dict.fromkeys(spread)
    months.update(whole)  # a month never lies in both: the legacy partition ends where the month partitions start
    return sorted(months.items())


def export_archive_to_files(directory: Path) -> list[Path]:
    """Write each month in build_access_log_archive to its gzip CSV file, then remove it from the archive: a month
    partition is detached and dropped whole, rows of the archive's legacy partition are deleted.

    Crash-safe: a month's file is the union (by id, in id order) of the file already there and the archived rows,
    written to a temporary file and renamed into place before the rows leave the table, in one transaction that
    locks them against change (the partition in SHARE mode, legacy rows FOR UPDATE). A kill at any point leaves
    every row in the table or the file (or both, and the next run merges without duplicates).
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for month, partition in _archive_months():
        path = archive_file(directory, month)
        end = (month.replace(day=1) + timedelta(days=32)).replace(day=1)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
            if partition is not None:
                cursor.execute(f'LOCK TABLE "{partition}" IN SHARE MODE')
                cursor.execute(f'SELECT {", ".join(ARCHIVE_COLUMNS)} FROM "{partition}" ORDER BY id')
            else:
                cursor.execute(
                    f"SELECT {', '.join(ARCHIVE_COLUMNS)} FROM build_access_log_archive"
                    " WHERE accessed_at >= %s::timestamp AT TIME ZONE 'UTC'"
                    " AND accessed_at < %s::timestamp AT TIME ZONE 'UTC' ORDER BY id FOR UPDATE",
                    [month, end],
                )
            archived = [(row[0], ["" if value is None else _csv_value(value) for value in row]) for row in cursor]
            if not archived:  # an empty month partition (created ahead by a batch, or by the seed): no file
                if partition is not None:
                    cursor.execute(f'ALTER TABLE build_access_log_archive DETACH PARTITION "{partition}"')
                    cursor.execute(f'DROP TABLE "{partition}"')
                continue
            temporary = path.with_name(path.name + ".tmp")
            seen = None
            with gzip.open(temporary, "wt", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(ARCHIVE_COLUMNS)
                for row_id, row in heapq.merge(_file_rows(path), archived, key=lambda item: item[0]):
                    if row_id != seen:
                        writer.writerow(row)
                        seen = row_id
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            _fsync_directory(directory)
            if partition is not None:
                cursor.execute(f'ALTER TABLE build_access_log_archive DETACH PARTITION "{partition}"')
                cursor.execute(f'DROP TABLE "{partition}"')
            else:
                cursor.execute(
                    "DELETE FROM build_access_log_archive WHERE id = ANY(%s) AND accessed_at >= %s::timestamp AT"
                    " TIME ZONE 'UTC' AND accessed_at < %s::timestamp AT TIME ZONE 'UTC'",
                    [[row_id for row_id, _ in archived], month, end],
                )
        written.append(path)
    return written


def _csv_value(value) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
