"""Benchmark of retention on the monthly partitions (issue 15): removing one month of ``build_events`` by
detaching and dropping its partition (``partition_drop_before``, what ``cleanup_old_build_logs`` now does for whole
months) against the batched delete ``cleanup_old_build_logs`` did before (``DELETE ... LIMIT``-style batches of
5,000, each committed), for two months of the same size in the same run.

Runs in its own database (``<name>_bench_partitions`` on the configured server), recreated on every run.

    .venv/bin/python bench/partition_retention.py                       # 6 months of 200,000 events each
    .venv/bin/python bench/partition_retention.py --months 4 --rows-per-month 20000   # quick
"""

import argparse
import time

from _setup import use_database  # sets Django up, so it comes before the Django imports
from django.conf import settings
from django.db import connection, transaction

BATCH = 5000


def fill(months: int, rows_per_month: int) -> None:
    """``rows_per_month`` events in each of the ``months`` months before the current one, in their partitions."""
    with connection.cursor() as cursor:
        for month in range(months, 0, -1):
            cursor.execute(
                "INSERT INTO build_events (build_id, event_type, from_status, to_status, worker_id, message, data,"
                " created_at)"
                " SELECT gen_random_uuid(), 'completed', 'running', 'succeeded', 'worker-' || (g %% 16), 'done',"
                " jsonb_build_object('n', g),"
                " date_trunc('month', now(), 'UTC') - make_interval(months => %s)"
                "   + (g::double precision / %s) * interval '28 days'"
                " FROM generate_series(1, %s) g",
                [month, rows_per_month, rows_per_month],
            )
            # The rows landed in DEFAULT; move them to their month's partition as maintenance does.
            while True:
                cursor.execute("SELECT partition_drain_default('build_events')")
                if cursor.fetchone()[0] == 0:
                    break
        cursor.execute("VACUUM ANALYZE build_events")


def month_bounds(months_back: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('month', now(), 'UTC') - make_interval(months => %s),"
            " date_trunc('month', now(), 'UTC') - make_interval(months => %s)",
            [months_back, months_back - 1],
        )
        return cursor.fetchone()


def time_drop(months_back: int) -> tuple[float, int]:
    """Drop the partition of the month ``months_back`` months ago: one short transaction."""
    _, upper = month_bounds(months_back)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '5s'")
        cursor.execute("SELECT partition_drop_before('build_events', %s)", [upper])
        rows = cursor.fetchone()[0]
    return time.perf_counter() - started, rows


def time_batched_delete(months_back: int) -> tuple[float, int]:
    """Delete the month ``months_back`` months ago as cleanup_old_build_logs did: batches of 5,000, each committed."""
    lower, upper = month_bounds(months_back)
    total = 0
    started = time.perf_counter()
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM build_events WHERE (id, created_at) IN (SELECT e.id, e.created_at FROM build_events e"
                " WHERE e.created_at >= %s AND e.created_at < %s LIMIT %s)",
                [lower, upper, BATCH],
            )
            deleted = cursor.rowcount
        total += deleted
        if deleted == 0:
            return time.perf_counter() - started, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=6, help="months of history (at least 3)")
    parser.add_argument("--rows-per-month", type=int, default=200_000, help="build_events rows per month")
    args = parser.parse_args()
    if args.months < 3:
        parser.error("--months must be at least 3")
    name = f"{settings.DATABASES['default']['NAME']}_bench_partitions"
    use_database(name, fresh=True)
    started = time.perf_counter()
    fill(args.months, args.rows_per_month)
    print(
        f"filled {args.months} months x {args.rows_per_month:,} build_events in {time.perf_counter() - started:.1f} s"
    )
    # The oldest month by drop, the next one by the old batched delete: the same size, the same run.
    drop_s, drop_rows = time_drop(args.months)
    delete_s, delete_rows = time_batched_delete(args.months - 1)
    print(f"retention of one month by partition drop:   {drop_s * 1000:9.1f} ms  ({drop_rows:,} rows)")
    print(
        f"retention of one month by batched delete:   {delete_s * 1000:9.1f} ms"
        f"  ({delete_rows:,} rows, batches of {BATCH:,})"
    )
    print(f"drop / delete: {drop_s / delete_s:.4f}  (target: a month under 1 s by drop)")
    print(f"{'met' if drop_s < 1 else 'MISSED'}: month dropped in {drop_s * 1000:.1f} ms")


if __name__ == "__main__":
    main()
