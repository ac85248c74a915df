"""Scale benchmark: the seed's six-month volume in a fresh database.

Measures `migrate` from empty, the time to generate `seed_demo --scale six-months`, database and per-table size
against the seed's estimate (~6 GB), each of the seed's views that exists (median of 5 runs, with
EXPLAIN (ANALYZE, BUFFERS) of the slowest), and each maintenance schedule's duration at that volume.

    .venv/bin/python bench/scale.py            # the full six-month volume
    .venv/bin/python bench/scale.py --quick    # 2% of it, a smoke run

Uses DATABASE_URL's server if set, else the embedded PostgreSQL; works in a database of its own
(`honua_bench_scale`, dropped at the end unless --keep).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SEED_VIEWS = (
    "active_builds",
    "build_performance_summary",
    "customer_build_usage",
    "active_conversations",
    "conversation_performance_summary",
    "intent_analytics",
    "extraction_accuracy",
    "cache_statistics",
)
# The seed's size estimate for six months and 100 customers, in MB (indexes counted separately there).
SEED_ESTIMATE_MB = {
    "build_cache_registry": 500,
    "build_access_log": 2000,
    "build_queue": 100,
    "build_results": 500,
    "build_events": 1000,
    "conversations": 50,
    "conversation_messages": 200,
    "build_manifests": 50,
}
SEED_TOTAL_MB = 6000
TARGETS = {"generate_s": 180, "view_ms": 100, "weekly_s": 60, "hourly_s": 1}
SCHEDULES = ("hourly", "every-6-hours", "daily", "weekly", "monthly")


def manage(url: str, *args: str, timeout: int = 900) -> tuple[float, subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DATABASE_URL"] = url
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    elapsed = time.monotonic() - start
    if result.returncode not in (0, 1):
        sys.exit(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed, result


def server_url(database: str) -> str:
    """A URL for ``database`` on DATABASE_URL's server, or on the embedded one."""
    if os.environ.get("DATABASE_URL"):
        parts = urlsplit(os.environ["DATABASE_URL"])
        return urlunsplit(parts._replace(path=f"/{database}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    out = subprocess.run(
        [sys.executable, "manage.py", "dbserver", "url"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out))
    return f"postgres://{fields['user']}@{quote(fields['host'], safe='')}:{fields['port']}/{database}"


def admin_connection(url: str) -> psycopg.Connection:
    parts = urlsplit(url)
    return psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def recreate(url: str, database: str) -> None:
    with admin_connection(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop(url: str, database: str) -> None:
    with admin_connection(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def mb(size: int) -> str:
    return f"{size / 1048576:,.1f} MB"


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def measure_sizes(conn: psycopg.Connection) -> int:
    rows = conn.execute(
        """SELECT c.relname, pg_relation_size(c.oid) + coalesce(pg_total_relation_size(c.reltoastrelid), 0),
                  pg_indexes_size(c.oid), pg_total_relation_size(c.oid), c.reltuples::bigint
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC"""
    ).fetchall()
    print(f"\n{'table':<28}{'rows':>12}{'data':>14}{'indexes':>14}{'total':>14}{'seed estimate':>16}")
    for name, data, indexes, total, tuples in rows:
        if total < 1024 * 1024 and name not in SEED_ESTIMATE_MB:
            continue
        estimate = f"{SEED_ESTIMATE_MB[name]:,} MB" if name in SEED_ESTIMATE_MB else ""
        print(f"{name:<28}{max(tuples, 0):>12,}{mb(data):>14}{mb(indexes):>14}{mb(total):>14}{estimate:>16}")
    [(database_size,)] = conn.execute("SELECT pg_database_size(current_database())").fetchall()
    data = sum(row[1] for row in rows)
    indexes = sum(row[2] for row in rows)
    print(f"{'all tables':<28}{'':>12}{mb(data):>14}{mb(indexes):>14}{mb(data + indexes):>14}{'6,000 MB':>16}")
    print(f"database size: {mb(database_size)} (seed estimate ~{SEED_TOTAL_MB:,} MB)")
    return database_size


def measure_views(conn: psycopg.Connection) -> dict[str, float]:
    existing = [row[0] for row in conn.execute(
        "SELECT viewname FROM pg_views WHERE schemaname = 'public' AND viewname = ANY(%s)", [list(SEED_VIEWS)]
    ).fetchall()]  # fmt: skip
    missing = [view for view in SEED_VIEWS if view not in existing]
    timings = {}
    print(f"\n{'view':<36}{'rows':>10}{'median ms':>12}{'target':>10}")
    for view in existing:
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(view))).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
        timings[view] = statistics.median(samples)
        ok = timings[view] < TARGETS["view_ms"]
        print(f"{view:<36}{len(rows):>10,}{timings[view]:>12.1f}{'< 100 ms':>10} {met(ok)}")
    if missing:
        print(f"(views not in this branch yet: {', '.join(missing)})")
    if timings:
        slowest = max(timings, key=timings.get)
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) SELECT * FROM {slowest}:")
        plan = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM {}").format(sql.Identifier(slowest))
        ).fetchall()
        for (line,) in plan:
            print("    " + line)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2%% of the volume: a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--database", default="honua_bench_scale", help="database to (re)create for the run")
    args = parser.parse_args()
    fraction = "0.02" if args.quick else "1"
    url = server_url(args.database)
    recreate(url, args.database)
    results = {}
    try:
        results["migrate_s"], _ = manage(url, "migrate", "--no-input", "-v", "0")
        print(f"migrate from an empty database: {results['migrate_s']:.1f} s (wall, including Django start-up)")

        elapsed, seeded = manage(url, "seed_demo", "--scale", "six-months", "--seed", "1", "--fraction", fraction)
        results["generate_s"] = elapsed
        print(seeded.stdout.strip().splitlines()[-1] if seeded.stdout.strip() else "")
        ok = elapsed < TARGETS["generate_s"] or args.quick
        print(f"generate six-months (fraction {fraction}): {elapsed:.1f} s wall; target < 180 s: {met(ok)}")

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")  # what autovacuum would have done on a live system
            results["database_bytes"] = measure_sizes(conn)
            results["views_ms"] = measure_views(conn)

        print(f"\n{'schedule':<16}{'tasks':>7}{'rows':>12}{'run ms':>10}{'wall s':>9}  target")
        results["schedules_ms"] = {}
        for schedule in SCHEDULES:
            wall, run = manage(url, "run_maintenance", schedule, "--format", "json")
            report = json.loads(run.stdout)
            results["schedules_ms"][schedule] = report["duration_ms"]
            target = {"hourly": "< 1 s", "weekly": "< 60 s"}.get(schedule, "")
            verdict = ""
            if schedule == "hourly":
                verdict = met(report["duration_ms"] < 1000)
            elif schedule == "weekly":
                verdict = met(report["duration_ms"] < 60_000)
            rows = sum(task["rows"] for task in report["tasks"])
            print(f"{schedule:<16}{len(report['tasks']):>7}{rows:>12,}{report['duration_ms']:>10,}{wall:>9.1f}  "
                  f"{target} {verdict}")  # fmt: skip
            for task in report["tasks"]:
                flag = "" if task["outcome"] == "succeeded" else f"  FAILED: {task['error']}"
                print(f"    {task['task']:<34}{task['rows']:>10,} rows {task['duration_ms']:>8,} ms{flag}")
    finally:
        if not args.keep:
            drop(url, args.database)
    print("\n(figures from a machine shared with other work are noisy; re-run on a quiet one for the record)")


if __name__ == "__main__":
    main()
