"""Scale benchmark: the seed's six-month volume and ten times it (issue 15), each in a fresh database, side by side.

For each size (``seed_demo --scale six-months`` and ``--scale ten-x``: 1,000 customers, every volume times ten) it
measures `migrate` from empty, the generation, database and per-table size, every view (the ``*_summary``,
``*_statistics`` and ``active_*`` views plus the seed's, median of 5 runs, with EXPLAIN (ANALYZE, BUFFERS) of the
slowest), the operator dashboard (24-hour and 30-day ranges, rendered through Django's test client with its cache
cleared before each request), the claim's p99 (one connection, the history in place), and each maintenance
schedule; then prints one table with both sizes, the ratio, and the issue's targets, misses printed as misses.

    .venv/bin/python bench/scale.py                                 # six-months and ten-x
    .venv/bin/python bench/scale.py --sizes six-months              # one size
    .venv/bin/python bench/scale.py --quick                         # 2% of the volumes, a smoke run

Uses DATABASE_URL's server if set, else the embedded PostgreSQL; works in a database of its own per size
(`<DATABASE_URL's database>_bench_scale_<size>`, dropped at the end unless --keep).
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
VIEW_PATTERNS = ("%\\_summary", "%\\_statistics", "active\\_%")
SIZES = ("six-months", "ten-x")
SCHEDULES = ("hourly", "every-6-hours", "daily", "weekly", "monthly")
CLAIMS = 1000  # claims timed for the p99 (its tenth-largest sample)
DASHBOARD_RANGES = ("24h", "30d")
DASHBOARD_REPEAT = 5


def manage(
    url: str, *args: str, timeout: int = 900, accept: tuple[int, ...] = (0, 1)
) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``manage.py args`` against ``url``: (seconds, the finished process). A return code outside ``accept``
    stops the benchmark (run_maintenance returns 1 when a task failed, which the figures then show)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DATABASE_URL"] = url
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    elapsed = time.monotonic() - start
    if result.returncode not in accept:
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
        "SELECT viewname FROM pg_views WHERE schemaname = 'public'"
        " AND (viewname = ANY(%s) OR viewname LIKE ANY(%s)) ORDER BY viewname",
        [list(SEED_VIEWS), list(VIEW_PATTERNS)],
    ).fetchall()]  # fmt: skip
    missing = [view for view in SEED_VIEWS if view not in existing]
    timings = {}
    # Whole reads as a client sees them (rows decoded by psycopg), the server's own execution time beside them
    # (EXPLAIN ANALYZE without per-node timing), and, for views with a customer_id, one customer's rows: a view
    # with a row per customer returns ten times the rows at ten-x, so only the per-customer read shows whether its
    # cost grows with history.
    [(biggest,)] = conn.execute("SELECT customer_id FROM build_queue GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    print(f"\n{'view':<46}{'rows':>10}{'median ms':>12}{'server ms':>11}{'target':>10}")
    for view in existing:
        samples, server = [], []
        for _ in range(5):
            start = time.perf_counter()
            rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(view))).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
            plan = conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) SELECT * FROM {}").format(sql.Identifier(view))
            ).fetchone()[0]
            server.append(plan[0]["Execution Time"])
        timings[view] = statistics.median(samples)
        timings[f"{view} (server)"] = statistics.median(server)
        ok = timings[view] < 100
        print(f"{view:<46}{len(rows):>10,}{timings[view]:>12.1f}{statistics.median(server):>11.1f}"
              f"{'< 100 ms':>10} {met(ok)}")  # fmt: skip
        has_customer = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s"
            " AND column_name = 'customer_id'",
            [view],
        ).fetchone()
        if has_customer and view != "build_performance_summary":
            query = sql.SQL("SELECT * FROM {} WHERE customer_id = %s").format(sql.Identifier(view))
            samples = []
            for _ in range(5):
                start = time.perf_counter()
                rows = conn.execute(query, [biggest]).fetchall()
                samples.append((time.perf_counter() - start) * 1000)
            name = f"{view} (1 customer)"
            timings[name] = statistics.median(samples)
            print(
                f"{name:<46}{len(rows):>10,}{timings[name]:>12.1f}{'':>11}{'< 100 ms':>10} {met(timings[name] < 100)}"
            )
    if missing:
        print(f"(views not in this branch yet: {', '.join(missing)})")
    # What a report reads: the biggest customer's last 30 days (the whole view is one row per customer-day).
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        rows = conn.execute(
            "SELECT * FROM build_performance_summary WHERE customer_id = %s AND day >= current_date - 30", [biggest]
        ).fetchall()
        samples.append((time.perf_counter() - start) * 1000)
    name = "build_performance_summary (1 customer, 30 d)"
    timings[name] = statistics.median(samples)
    print(f"{name:<46}{len(rows):>10,}{timings[name]:>12.1f}{'':>11}{'< 100 ms':>10} {met(timings[name] < 100)}")
    if timings:
        slowest = max(existing, key=timings.get)
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) SELECT * FROM {slowest}:")
        plan = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM {}").format(sql.Identifier(slowest))
        ).fetchall()
        for (line,) in plan:
            print("    " + line)
    return timings


def measure_claim(url: str) -> float:
    """p99 of ``get_next_build_for_worker`` on one connection with the whole history in place, in ms: CLAIMS builds
    enqueued on the seed's active licenses, each claimed then completed (the completion not timed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        customers = [row[0] for row in conn.execute(
            "SELECT l.customer_id FROM licenses l JOIN customers c ON c.id = l.customer_id"
            " WHERE l.status = 'active' AND l.tier IN ('asp', 'enterprise') AND c.deleted_at IS NULL ORDER BY 1"
        ).fetchall()]  # fmt: skip
        errors = []
        enqueued = 0
        for n in range(CLAIMS * 3):
            if enqueued >= CLAIMS:
                break
            try:
                conn.execute(
                    "SELECT enqueue_build(%s, jsonb_build_object('bench', 'claim', 'n', %s::int), 5)",
                    [customers[n % len(customers)], n],
                )
                enqueued += 1
            except psycopg.Error as exc:  # a license at its quota: the next one
                errors.append(str(exc).splitlines()[0])
                continue
        if enqueued < CLAIMS:
            print(f"claim: only {enqueued} builds enqueued ({errors[:1]})")
        samples, statements = [], []
        for _ in range(CLAIMS):
            # Timed as a worker sees it, commit included; the statement alone is printed beside it.
            start = time.perf_counter()
            conn.execute("BEGIN")
            row = conn.execute("SELECT id FROM get_next_build_for_worker('bench-claim')").fetchone()
            statement = (time.perf_counter() - start) * 1000
            conn.execute("COMMIT")
            elapsed = (time.perf_counter() - start) * 1000
            if row is None:
                break
            samples.append(elapsed)
            statements.append(statement)
            conn.execute(
                "SELECT complete_build(%s, 'bench-claim', true, 'registry.example/bench:1', %s)",
                [row[0], "sha256:" + "f" * 64],
            )
    samples.sort()
    statements.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    alone = statements[min(len(statements) - 1, int(len(statements) * 0.99))]
    print(
        f"claim: {len(samples)} claims on one connection, with the commit p50 {statistics.median(samples):.2f} ms,"
        f" p99 {p99:.2f} ms; the statement alone p50 {statistics.median(statements):.2f} ms, p99 {alone:.2f} ms"
    )
    return p99


def probe_dashboard() -> None:
    """(Run in a subprocess with DATABASE_URL set to the size's database.) The dashboard's median render time per
    range, its cache cleared before each request, as JSON on the last line."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "honua.settings.development")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user, _ = User.objects.get_or_create(username="bench-scale", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    result = {}
    for key in DASHBOARD_RANGES:
        url = f"/admin/console/dashboard/?range={key}"
        cache.clear()
        assert client.get(url).status_code == 200  # warm-up
        timings = []
        for _ in range(DASHBOARD_REPEAT):
            cache.clear()
            start = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        result[key] = statistics.median(timings)
    print(json.dumps(result))


def measure_dashboard(url: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DATABASE_URL"] = url
    run = subprocess.run(
        [sys.executable, __file__, "--probe-dashboard"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if run.returncode:
        sys.exit(f"dashboard probe failed:\n{run.stdout}\n{run.stderr}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for key, ms in result.items():
        print(f"dashboard ?range={key}: median {ms:.1f} ms of {DASHBOARD_REPEAT} (cache cleared before each)")
    return result


def run_size(size: str, fraction: str, keep: bool, results: dict) -> None:
    """Measure ``size`` into ``results`` (filled as it goes, so a step that times out leaves the figures before it)."""
    # Named after DATABASE_URL's database (as the queue benchmark's), so two checkouts on one server do not drop
    # each other's benchmark database.
    base = urlsplit(os.environ["DATABASE_URL"]).path.lstrip("/") if os.environ.get("DATABASE_URL") else "honua"
    database = f"{base or 'honua'}_bench_scale_{size.replace('-', '_')}"
    url = server_url(database)
    recreate(url, database)
    print(f"\n=== {size} (fraction {fraction}) in {database} ===")
    try:
        results["migrate_s"], _ = manage(url, "migrate", "--no-input", "-v", "0")
        print(f"migrate from an empty database: {results['migrate_s']:.1f} s (wall, including Django start-up)")
        elapsed, seeded = manage(
            url, "seed_demo", "--scale", size, "--seed", "1", "--fraction", fraction, timeout=3600, accept=(0,)
        )
        results["generate_s"] = elapsed
        print(seeded.stdout.strip().splitlines()[-1] if seeded.stdout.strip() else "")
        print(f"generate {size} (fraction {fraction}): {elapsed:.1f} s wall")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")  # what autovacuum would have done on a live system
            # And what its checkpointer would have done: without this, the first minutes of every measurement share
            # the disk with the write-back of the gigabytes just loaded, and each commit's flush waits behind it.
            conn.execute("CHECKPOINT")
            results["database_bytes"] = measure_sizes(conn)
            results["views_ms"] = measure_views(conn)
        results["dashboard_ms"] = measure_dashboard(url)
        results["claim_p99_ms"] = measure_claim(url)
        print(f"\n{'schedule':<16}{'tasks':>7}{'rows':>12}{'run ms':>10}{'wall s':>9}")
        results["schedules_ms"] = {}
        results["tasks_ms"] = {}
        for schedule in SCHEDULES:
            wall, run = manage(url, "run_maintenance", schedule, "--format", "json", timeout=1800)
            report = json.loads(run.stdout)
            results["schedules_ms"][schedule] = report["duration_ms"]
            rows = sum(task["rows"] for task in report["tasks"])
            print(f"{schedule:<16}{len(report['tasks']):>7}{rows:>12,}{report['duration_ms']:>10,}{wall:>9.1f}")
            for task in report["tasks"]:
                results["tasks_ms"][task["task"]] = task["duration_ms"]
                flag = "" if task["outcome"] == "succeeded" else f"  FAILED: {task['error']}"
                print(f"    {task['task']:<34}{task['rows']:>10,} rows {task['duration_ms']:>8,} ms{flag}")
                moved = re.search(r"moved in (\d+) ms", task.get("detail", ""))
                if task["task"] == "archive_build_access_log" and moved:
                    # The whole months' move by partition, apart from their validation scan and the edge month's
                    # batches (the task's report times the three).
                    print(f"      {task['detail']}")
                    results["tasks_ms"]["archive_build_access_log (whole months moved)"] = int(moved.group(1))
    except subprocess.TimeoutExpired as exc:
        print(f"MISSED: {' '.join(str(a) for a in exc.cmd[1:])} did not finish in {exc.timeout:.0f} s")
    finally:
        if not keep:
            drop(url, database)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value / 1048576:,.0f} MB"
    if unit == "s":
        return f"{value:,.1f} s"
    return f"{value:,.1f} ms"


def side_by_side(results: dict[str, dict]) -> None:
    """One row per figure: each size, the ratio of the last size to the first, the target and its verdict (the
    absolute targets are the issue's for ten times the seed; each view's ratio must stay under 2x)."""
    sizes = list(results)
    first, last = sizes[0], sizes[-1]
    rows: list[tuple[str, str, dict, float | None, str]] = []  # name, unit, values, target, kind

    def add(name, unit, get, target=None, kind="abs"):
        values = {}
        for size in sizes:
            try:
                values[size] = get(results[size])
            except KeyError:
                values[size] = None
        rows.append((name, unit, values, target, kind))

    add("generation", "s", lambda r: r["generate_s"], 300)
    add("database size", "MB", lambda r: r["database_bytes"])
    for view in sorted({v for r in results.values() for v in r.get("views_ms", {})}):
        add(f"view {view}", "ms", lambda r, v=view: r["views_ms"][v], 100, "view")
    for key in DASHBOARD_RANGES:
        add(f"dashboard ?range={key}", "ms", lambda r, k=key: r["dashboard_ms"][k], 300)
    add("claim p99 (one connection)", "ms", lambda r: r["claim_p99_ms"], 5)
    for schedule in SCHEDULES:
        target = {"hourly": 1000, "weekly": 60_000}.get(schedule)
        add(f"maintenance {schedule}", "ms", lambda r, s=schedule: r["schedules_ms"][s], target)
    add("monthly: access-log retention, the whole task", "ms", lambda r: r["tasks_ms"]["archive_build_access_log"])
    add(
        "monthly: retention of whole months (by partition)",
        "ms",
        lambda r: r["tasks_ms"]["archive_build_access_log (whole months moved)"],
        1000,
    )

    header = f"\n{'figure':<54}" + "".join(f"{size:>14}" for size in sizes)
    header += f"{'ratio':>8}  target (at {last})" if len(sizes) > 1 else f"  target (at {last})"
    print(header)
    for name, unit, values, target, kind in rows:
        line = f"{name:<54}" + "".join(f"{_fmt(values[size], unit):>14}" for size in sizes)
        verdicts = []
        ratio = None
        if len(sizes) > 1 and values[first] and values[last] is not None:
            ratio = values[last] / values[first]
            line += f"{ratio:>7.1f}x"
        elif len(sizes) > 1:
            line += f"{'':>8}"
        if target is not None and values[last] is not None:
            shown = f"{target:,} s" if unit == "s" else f"{target:,} ms"
            verdicts.append(f"< {shown} {met(values[last] < target)}")
        if kind == "view" and ratio is not None:
            verdicts.append(f"ratio < 2x {met(ratio < 2)}")
        print(line + "  " + "; ".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated seed scales (default: both)")
    parser.add_argument("--quick", action="store_true", help="2%% of the volumes: a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases afterwards")
    parser.add_argument("--probe-dashboard", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_dashboard:
        probe_dashboard()
        return
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    unknown = [size for size in sizes if size not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; expected some of {', '.join(SIZES)}")
    fraction = "0.02" if args.quick else "1"
    results: dict[str, dict] = {}
    for size in sizes:
        results[size] = {}
        run_size(size, fraction, args.keep, results[size])
    side_by_side(results)
    print("\n(figures from a machine shared with other work are noisy; re-run on a quiet one for the record)")


if __name__ == "__main__":
    main()
