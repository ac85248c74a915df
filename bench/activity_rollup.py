"""Benchmark of the dashboard's 30-day build activity (issue 15): the released query over the month's results
against the daily rollup (``build_activity_daily``) plus the live days, on the same database in the same run.

Point it at a seeded database (e.g. one kept by ``bench/scale.py --keep``); it folds the rollup (as the hourly
maintenance does), checks that both give the same figures, and prints the median of each, for every customer and
for the customer with the most builds.

    .venv/bin/python bench/activity_rollup.py --database honua_bench_scale_ten_x
"""

import argparse
import datetime as dt
import statistics
import time

from _setup import connection, connections, settings  # sets Django up, so it comes before the Django imports

from console import selectors


def released(customer_id) -> tuple:
    """The released 30-day figures: BUILD_ACTIVITY_SQL (still the 1h/24h/7d query) over the month's results."""
    chosen = selectors.RANGES["30d"]
    buckets = chosen.window()
    params = {
        "step": chosen.step,
        "origin": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        "start": buckets[0],
        "customer": customer_id,
    }
    sql = selectors.BUILD_ACTIVITY_SQL.format(customer_join=selectors.CUSTOMER_JOIN if customer_id else "")
    served = selectors.CACHE_SERVED_SQL.format(customer_filter="AND customer_id = %(customer)s" if customer_id else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        cursor.execute(served, params)
        return rows, cursor.fetchone()


def median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="a seeded database on the configured server")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    connections.close_all()
    settings.DATABASES["default"]["NAME"] = args.database
    connection.settings_dict["NAME"] = args.database
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id FROM build_queue WHERE created_at >= now() - interval '30 days'"
            " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        )
        row = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM build_results WHERE created_at >= now() - interval '30 days'")
        (results,) = cursor.fetchone()
    biggest = row[0] if row else None
    print(f"database {args.database}: {results:,} results in the last 30 days")
    live = {c: selectors.build_activity("30d", customer_id=c) for c in (None, biggest)}
    start = time.perf_counter()
    folds = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT fold_build_daily_rollup()")
            folds += 1
            cursor.execute(
                "SELECT folded_through >= (now() AT TIME ZONE 'UTC')::date - 1 FROM build_daily_rollup_state"
            )
            if cursor.fetchone()[0] or folds > 20:
                break
    print(f"fold the rollup up to yesterday: {folds} call(s), {time.perf_counter() - start:.2f} s")
    for customer, label in ((None, "every customer"), (biggest, "the biggest customer")):
        same = selectors.build_activity("30d", customer_id=customer) == live[customer]
        old = median_ms(lambda c=customer: released(c), args.repeat)
        new = median_ms(lambda c=customer: selectors.build_activity("30d", customer_id=c), args.repeat)
        print(
            f"30d build activity, {label}: released query {old:.1f} ms, rollup + live days {new:.1f} ms"
            f" (median of {args.repeat}); same figures as before folding: {'yes' if same else 'NO'}"
        )


if __name__ == "__main__":
    main()
