"""Benchmark of the build queue (issue 4). Prints every figure and whether each target was met.

1. Claim + complete cycles/second through ``get_next_build_for_worker`` and ``complete_build`` (concurrency limits,
   events, results and cache registration all on) with 1, 4 and 16 connections, side by side in the same run
   with a minimal SKIP LOCKED queue (one table, one partial index, claim = ``UPDATE ... WHERE id = (SELECT ...
   FOR UPDATE SKIP LOCKED)``, complete = ``UPDATE``), and their ratio; claim latency p50/p99 (client side).
   On a queue of at least 100,000 builds across 100 customers (25 each of core/pro/enterprise/asp, so limits of
   1, 4, 16 and 32 concurrent builds), topped up before every round.
2. The same after adding 1,000,000 finished builds to the history of both queues.
3. End-to-end builds/second of the reference worker (``builds.queue.worker.Worker``, the engine of run_build_worker)
   with the simulated executor at zero work (``--noop``), in this one process.
4. Enqueue-to-claim latency with an idle listening worker (server clock: claim start - enqueue time).
5. Enqueue rate of one asp license as its month fills: chunks of 10,000 ``enqueue_build`` calls in one statement
   each, on one connection (issue 12: flat, and >= 1,000/s).
6. Fairness (issue 12): the flood scenario (an asp customer enqueues 2,000 at priority 5, then pro, core and
   enterprise customers 10 each; 8 slots draining: claim until 8 run, complete the oldest, repeat), printing the
   claim index of each other tenant's first build; and each tier's share of 1,000 consecutive claims with four
   tiers backlogged, against its weight share.
7. procrastinate side by side (issue 12): pgbench, 16 clients, interleaved rounds of the project's cycle
   (``get_next_build_for_worker`` then ``complete_build``), procrastinate's (``procrastinate_fetch_job_v2`` then
   ``procrastinate_finish_job_v1``) and the minimal queue's, each on 100,000 queued jobs. procrastinate is
   pip-installed (pinned, ``PROCRASTINATE_VERSION``) into its own virtualenv under ``bench/output/`` (git-ignored)
   and its schema lives in its own database (``<name>_bench_procrastinate``). Each round starts with the three
   queues' tables vacuumed, and prints each one's WAL per cycle (full-page images apart, with pg_walinspect);
   after the rounds, where the project's WAL went, by relation.
8. Cost (``--only cost``, one connection): buffers and WAL per claim and completion, server CPU per cycle against the
   minimal queue's, the cycle's server time by SQL function, and the server CPU per build of the reference
   worker's statements, part by part.

Targets: 16 connections >= 0.9x the minimal queue; 1M history changes throughput by < 10% and keeps the
single-connection claim p99 < 5 ms; worker >= 1,500 builds/s; enqueue-to-claim p50 < 10 ms.

Each connection runs in its own process (no GIL between clients). Runs in its own database
(``<name>_bench_queue``), created and migrated on first use; ``--fresh`` drops it first.

    .venv/bin/python bench/queue_throughput.py            # full size
    .venv/bin/python bench/queue_throughput.py --quick    # small smoke run
    .venv/bin/python bench/queue_throughput.py --only fairness|enqueue|procrastinate|worker|cost|history [--quick]
"""

import argparse
import collections
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from _setup import use_database  # sets Django up, so it comes before the Django imports
from django.conf import settings
from django.db import connection, connections

RATIO_TARGET, HISTORY_CHANGE_TARGET, P99_TARGET_MS = 0.9, 0.10, 5.0
PROCRASTINATE_VERSION = "3.10.0"
PROCRASTINATE_RATIO_TARGET, MINIMAL_RATIO_TARGET_V2 = 1.25, 0.8
ENQUEUE_RATE_TARGET, ENQUEUE_FLAT_TARGET = 1000.0, 0.30
FLOOD_BOUND, SHARE_TOLERANCE = 16, 0.15
WEIGHTS = {"core": 1, "pro": 2, "enterprise": 4, "asp": 6}
OUTPUT = Path(__file__).resolve().parent / "output"
WORKER_TARGET, NOTIFY_P50_TARGET_MS = 1500.0, 10.0
CUSTOMERS = 100
DIGEST = "sha256:" + "f" * 64

MINIMAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_minimal_queue (
    id bigserial PRIMARY KEY,
    priority smallint NOT NULL,
    status text NOT NULL DEFAULT 'queued',
    payload jsonb NOT NULL,
    worker_id text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS bench_minimal_claim_idx ON bench_minimal_queue (priority DESC, created_at, id)
    WHERE status = 'queued';
"""
MINIMAL_CLAIM = """
UPDATE bench_minimal_queue SET status = 'running', worker_id = %s, started_at = now()
WHERE id = (SELECT id FROM bench_minimal_queue WHERE status = 'queued' ORDER BY priority DESC, created_at, id
            LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id
"""
MINIMAL_COMPLETE = "UPDATE bench_minimal_queue SET status = 'succeeded', finished_at = now() WHERE id = %s"
HONUA_CLAIM = "SELECT id FROM get_next_build_for_worker(%s)"
HONUA_COMPLETE = "SELECT complete_build(%s, %s, true, 'registry.example/bench:1', %s, NULL)"


def conninfo() -> str:
    s = connection.settings_dict
    parts = {"dbname": s["NAME"], "user": s["USER"], "host": s["HOST"], "port": s["PORT"], "password": s["PASSWORD"]}
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in parts.items() if v})


def execute(statement: str, params=None) -> list:
    if params is None:  # psycopg only reads placeholders (and %% escapes) when there are parameters
        statement = statement.replace("%%", "%")
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def setup_customers() -> None:
    if execute("SELECT count(*) FROM customers WHERE name LIKE 'bench %%'")[0][0] >= CUSTOMERS:
        return
    execute(
        """
        INSERT INTO customers (name, contact_name, contact_email, publishes_to_shared_cache, metadata)
        SELECT 'bench ' || i, '', '', true, '{}' FROM generate_series(1, %s) i;
        """,
        [CUSTOMERS],
    )
    execute(
        """
        INSERT INTO licenses (customer_id, tier, status, is_trial, license_key_encrypted, license_key_index,
                              feature_overrides, notes, monthly_build_quota_override)
        SELECT c.id, (ARRAY['core', 'pro', 'enterprise', 'asp'])[1 + (row_number() OVER (ORDER BY c.id)) %% 4],
               'active', false, 'v1:0:bench-placeholder', encode(sha256(convert_to(c.id::text, 'UTF8')), 'hex'),
               '{}', '',
               100000000
        FROM customers c WHERE c.name LIKE 'bench %%'
        """
    )
    execute(MINIMAL_SCHEMA)


def top_up(queued: int) -> None:
    """Bring both queues to ``queued`` claimable builds (priorities 1..10, spread over the 100 customers)."""
    have = execute("SELECT count(*) FROM build_queue WHERE status = 'queued'")[0][0]
    if have < queued:
        execute(
            """
            WITH lic AS (SELECT l.id, l.customer_id, row_number() OVER (ORDER BY l.id) - 1 AS n
                         FROM licenses l JOIN customers c ON c.id = l.customer_id WHERE c.name LIKE 'bench %%')
            INSERT INTO build_queue (customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit,
                                     progress, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds,
                                     cancel_requested, source, created_at)
            SELECT lic.customer_id, lic.id, jsonb_build_object('base', 'alpine', 'n', g.u),
                   encode(sha256(convert_to(g.u::text, 'UTF8')), 'hex'), 1 + floor(random() * 10)::int, 'queued',
                   false, 0, 0, 3, 3600, 120, false, 'bench', clock_timestamp()
            FROM (SELECT i, gen_random_uuid() AS u FROM generate_series(1, %s) i) g
            JOIN lic ON lic.n = g.i %% %s
            """,
            [queued - have, CUSTOMERS],
        )
    have = execute("SELECT count(*) FROM bench_minimal_queue WHERE status = 'queued'")[0][0]
    if have < queued:
        execute(
            """
            INSERT INTO bench_minimal_queue (priority, payload)
            SELECT 1 + floor(random() * 10)::int, jsonb_build_object('base', 'alpine', 'n', i)
            FROM generate_series(1, %s) i
            """,
            [queued - have],
        )
    execute("VACUUM ANALYZE build_queue")
    execute("VACUUM ANALYZE bench_minimal_queue")


def add_history(rows: int) -> None:
    """``rows`` finished builds in both queues' history (spread over the last 90 days), in batches."""
    print(f"adding {rows:,} finished builds to both histories ...", flush=True)
    batch = 200_000
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        execute(
            """
            WITH lic AS (SELECT l.id, l.customer_id, row_number() OVER (ORDER BY l.id) - 1 AS n
                         FROM licenses l JOIN customers c ON c.id = l.customer_id WHERE c.name LIKE 'bench %%')
            INSERT INTO build_queue (customer_id, license_id, manifest, manifest_hash, priority, status, cache_hit,
                                     progress, retry_count, max_retries, timeout_seconds, heartbeat_timeout_seconds,
                                     cancel_requested, source, worker_id, created_at, started_at, finished_at,
                                     image_reference, image_digest)
            SELECT lic.customer_id, lic.id, jsonb_build_object('base', 'alpine', 'n', g.u),
                   encode(sha256(convert_to(g.u::text, 'UTF8')), 'hex'), 1 + (g.i %% 10), 'succeeded', false, 100,
                   0, 3, 3600, 120, false, 'bench-history', 'old-worker', g.t, g.t + interval '1 minute',
                   g.t + interval '5 minutes', 'registry.example/old:1', %s
            FROM (SELECT i, gen_random_uuid() AS u, now() - interval '90 days' * random() AS t
                  FROM generate_series(1, %s) i) g
            JOIN lic ON lic.n = g.i %% %s
            """,
            [DIGEST, n, CUSTOMERS],
        )
        execute(
            """
            INSERT INTO bench_minimal_queue (priority, status, payload, worker_id, created_at, started_at, finished_at)
            SELECT 1 + (i %% 10), 'succeeded', jsonb_build_object('base', 'alpine', 'n', i), 'old-worker', t,
                   t + interval '1 minute', t + interval '5 minutes'
            FROM (SELECT i, now() - interval '90 days' * random() AS t FROM generate_series(1, %s) i) g
            """,
            [n],
        )
    execute("VACUUM ANALYZE build_queue")
    execute("VACUUM ANALYZE bench_minimal_queue")
    # A history accumulates over months, long written back by the time it is read: without this, the rounds after it
    # share the disk with the write-back of the rows just loaded, and both queues' commits wait behind it.
    execute("CHECKPOINT")


def _cycle_process(kind: str, info: str, worker_id: str, start_at: float, seconds: float, out) -> None:
    claim, complete = (HONUA_CLAIM, HONUA_COMPLETE) if kind == "honua" else (MINIMAL_CLAIM, MINIMAL_COMPLETE)
    latencies, statement_latencies, cycles, empty = [], [], 0, 0
    with psycopg.connect(info, autocommit=True) as conn:
        cur = conn.cursor()
        time.sleep(max(0.0, start_at - time.time()))
        deadline = start_at + seconds
        while time.time() < deadline:
            # The claim in its own transaction: its latency with the commit (what a worker waits), and of the
            # claim statement alone (what the queue costs, without the disk's flush).
            t0 = time.perf_counter()
            cur.execute("BEGIN")
            t1 = time.perf_counter()
            row = cur.execute(claim, [worker_id], prepare=True).fetchone()
            t2 = time.perf_counter()
            cur.execute("COMMIT")
            latencies.append(time.perf_counter() - t0)
            statement_latencies.append(t2 - t1)
            if row is None:
                empty += 1
                continue
            if kind == "honua":
                cur.execute(complete, [row[0], worker_id, DIGEST], prepare=True)
            else:
                cur.execute(complete, [row[0]], prepare=True)
            cycles += 1
    out.put((cycles, empty, latencies, statement_latencies))


def measure(kind: str, clients: int, seconds: float) -> dict:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    info = conninfo()
    start_at = time.time() + 0.5 + 0.05 * clients
    procs = [
        ctx.Process(target=_cycle_process, args=(kind, info, f"bench-{kind}-{i}", start_at, seconds, out))
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    latencies = sorted(lat for _, _, lats, _ in results for lat in lats)
    statements = sorted(lat for _, _, _, lats in results for lat in lats)
    cycles = sum(c for c, _, _, _ in results)
    return {
        "rate": cycles / seconds,
        "p50": 1000 * latencies[len(latencies) // 2],
        "p99": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "stmt_p50": 1000 * statements[len(statements) // 2],
        "stmt_p99": 1000 * statements[min(len(statements) - 1, int(len(statements) * 0.99))],
        "empty": sum(e for _, e, _, _ in results),
    }


def round_of(label: str, seconds: float, queued: int) -> dict:
    print(f"\n== {label}: claim + complete, {seconds:g} s per measurement, >= {queued:,} queued ==", flush=True)
    print(
        "claim latency in ms: with its commit (the statement alone)\n"
        f"{'connections':>11} {'honua/s':>9} {'minimal/s':>10} {'ratio':>6} {'honua p50':>17} {'honua p99':>17}"
        f" {'minimal p50':>17} {'minimal p99':>17}"
    )
    figures = {}
    for clients in (1, 4, 16):
        top_up(queued)
        honua = measure("honua", clients, seconds)
        top_up(queued)
        minimal = measure("minimal", clients, seconds)
        ratio = honua["rate"] / minimal["rate"] if minimal["rate"] else float("nan")
        figures[clients] = {"honua": honua, "minimal": minimal, "ratio": ratio}
        print(
            f"{clients:>11} {honua['rate']:>9.0f} {minimal['rate']:>10.0f} {ratio:>6.2f} "
            + " ".join(f"{q[k]:7.2f} ({q['stmt_' + k]:6.2f})" for q in (honua, minimal) for k in ("p50", "p99")),
            flush=True,
        )
    return figures


def worker_drain(builds: int, concurrency: int, synchronous_commit: bool = True) -> float:
    """Builds/second of the reference worker draining ``builds`` no-op builds in this process."""
    from builds.queue.executors import SimulatedExecutor
    from builds.queue.worker import Worker

    execute("UPDATE build_queue SET status = 'cancelled', finished_at = now() WHERE status = 'queued'")
    top_up(builds)
    execute("DELETE FROM bench_minimal_queue WHERE status = 'queued'")
    worker = Worker(
        executor=SimulatedExecutor(noop=True),
        concurrency=concurrency,
        exit_when_idle=True,
        reap_interval=0,
        synchronous_commit=synchronous_commit,
    )
    started = time.perf_counter()
    counts = worker.run()
    elapsed = time.perf_counter() - started
    connections.close_all()
    return counts["completed"] / elapsed


def worker_section(builds: int) -> dict[bool, dict[int, float]]:
    """The reference worker's drains: {synchronous_commit: {concurrency: builds/s}}."""
    print("\n== reference worker, simulated executor at zero work (--noop), one process ==", flush=True)
    drains = {c: worker_drain(builds, c) for c in (1, 4, 16)}
    for c, rate in drains.items():
        print(f"  --concurrency {c:>2}: {rate:,.0f} builds/s ({builds:,} builds)", flush=True)
    async_drains = {c: worker_drain(builds, c, synchronous_commit=False) for c in (4, 16)}
    for c, rate in async_drains.items():
        print(f"  --concurrency {c:>2} --no-synchronous-commit: {rate:,.0f} builds/s ({builds:,} builds)", flush=True)
    return {True: drains, False: async_drains}


def enqueue_to_claim(samples: int) -> tuple[float, float]:
    """p50/p99 ms from enqueue (created_at) to claim (started_at), one build at a time, worker idle between."""
    from builds.queue.executors import SimulatedExecutor
    from builds.queue.worker import Worker

    execute("UPDATE build_queue SET status = 'cancelled', finished_at = now() WHERE status = 'queued'")
    customer = execute(
        "SELECT l.customer_id FROM licenses l JOIN customers c ON c.id = l.customer_id "
        "WHERE c.name LIKE 'bench %%' AND l.tier = 'asp' LIMIT 1"
    )[0][0]
    worker = Worker(executor=SimulatedExecutor(noop=True), concurrency=1, poll_interval=30, reap_interval=0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    time.sleep(1.0)
    ids = []
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        for i in range(samples):
            row = conn.execute(
                "SELECT enqueue_build(%s, jsonb_build_object('latency', %s::text, 'n', %s), 5)",
                [customer, str(time.time()), i],
            ).fetchone()
            ids.append(row[0])
            time.sleep(0.03)  # the worker is idle again before the next one
        time.sleep(0.5)
        rows = conn.execute(
            "SELECT extract(epoch FROM started_at - created_at) * 1000 FROM build_queue WHERE id = ANY(%s)", [ids]
        ).fetchall()
    worker.request_stop(immediately=True)
    thread.join(30)
    connections.close_all()
    waits = sorted(float(r[0]) for r in rows if r[0] is not None)
    return statistics.median(waits), waits[min(len(waits) - 1, int(len(waits) * 0.99))]


def wal_per_cycle(cycles: int) -> dict:
    """WAL bytes one claim + complete cycle writes, for each queue (what a commit-flush-bound server pays)."""
    top_up(cycles * 2)
    figures = {}
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        for kind in ("minimal", "honua"):
            start = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            for _ in range(cycles):
                if kind == "minimal":
                    row = conn.execute(MINIMAL_CLAIM, ["wal"]).fetchone()
                    conn.execute(MINIMAL_COMPLETE, [row[0]])
                else:
                    row = conn.execute(HONUA_CLAIM, ["wal"]).fetchone()
                    conn.execute(HONUA_COMPLETE, [row[0], "wal", DIGEST])
            written = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", [start]).fetchone()[0]
            figures[kind] = float(written) / cycles
    return figures


def cost_per_cycle(cycles: int) -> dict:
    """Buffers touched and WAL written by the project's claim and completion, as EXPLAIN (ANALYZE, BUFFERS, WAL)
    reports them for this backend alone (nested statements and triggers included): unlike rates, these do not
    depend on what else the machine is doing, so they compare two versions of the code on a busy machine. The mean
    over ``cycles`` cycles on one connection. (The minimal queue is left out: finding the row its claim took would
    need an index it does not have.)"""
    top_up(cycles * 2)
    explain = "EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) "
    held = "SELECT id FROM build_queue WHERE status = 'running' AND started_at IS NOT NULL AND worker_id = 'cost'"
    totals = {"claim": [0, 0], "complete": [0, 0]}
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        for _ in range(cycles):
            claim_plan = conn.execute(explain + HONUA_CLAIM, ["cost"]).fetchone()[0][0]
            build = conn.execute(held).fetchone()[0]
            done_plan = conn.execute(explain + HONUA_COMPLETE, [build, "cost", DIGEST]).fetchone()[0][0]
            for step, plan in (("claim", claim_plan), ("complete", done_plan)):
                node = plan["Plan"]
                totals[step][0] += node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)
                totals[step][1] += node.get("WAL Bytes", 0)
    figures = {step: (buffers / cycles, wal / cycles) for step, (buffers, wal) in totals.items()}
    print(f"\n== cost per statement, one connection, mean of {cycles} cycles (EXPLAIN ANALYZE: this backend only) ==")
    for step, (buffers, wal) in figures.items():
        print(f"  {step:8s} {buffers:7.1f} buffers  {wal:7,.0f} WAL bytes")
    return figures


def _backend_cpu_ms(conn: psycopg.Connection) -> float:
    """CPU time (user + system) this connection's server process has used so far, in ms (from /proc: the server
    must run on this machine)."""
    pid = conn.info.backend_pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def cpu_per_cycle(cycles: int) -> dict:
    """Server CPU per claim + complete cycle on one connection, the project's and the minimal queue's, in the same
    run: the server process's own CPU time over ``cycles`` cycles. On a busy machine a process gets less of the CPU
    but uses about as much per cycle, so this compares code on a machine where rates do not (caches and the WAL
    writer's share aside). At 16 connections on a CPU-bound machine, throughput goes roughly as its inverse."""
    top_up(cycles * 2)
    figures = {}
    print(f"\n== server CPU per claim + complete, one connection, {cycles:,} cycles (/proc, the backend alone) ==")
    for kind, claim, complete in (("honua", HONUA_CLAIM, HONUA_COMPLETE), ("minimal", MINIMAL_CLAIM, MINIMAL_COMPLETE)):
        with psycopg.connect(conninfo(), autocommit=True) as conn:
            for _ in range(50):  # warm the plan caches
                row = conn.execute(claim, [f"cpu-{kind}"]).fetchone()
                conn.execute(complete, [row[0], f"cpu-{kind}", DIGEST] if kind == "honua" else [row[0]])
            before, started = _backend_cpu_ms(conn), time.perf_counter()
            for _ in range(cycles):
                row = conn.execute(claim, [f"cpu-{kind}"]).fetchone()
                conn.execute(complete, [row[0], f"cpu-{kind}", DIGEST] if kind == "honua" else [row[0]])
            cpu, wall = _backend_cpu_ms(conn) - before, time.perf_counter() - started
        figures[kind] = cpu / cycles
        print(f"  {kind:8s} {cpu / cycles * 1000:8.0f} us server CPU per cycle  ({wall / cycles * 1000:.2f} ms wall)")
    print(f"  ratio    {figures['honua'] / figures['minimal']:8.2f}x the minimal queue's CPU per cycle")
    function_profile(cycles // 2)
    return figures


def worker_cpu_parts(builds: int) -> dict:
    """Server CPU per build of what the reference worker sends for a build that logs one line, on one connection,
    by part: the statements of its finishing transaction (``_Context.finish_calls``: the log, the queue wait, the
    run time; then ``complete_build`` and the next ``claim_builds``, and the commit), built by the worker's own
    statement builders. Each part is the backend's CPU time across its statement (``/proc``, in clock ticks of 10
    ms), summed over ``builds`` builds: a statistical attribution, good to a few per cent of the total at 4,000."""
    from builds.queue import client

    top_up(builds + 100)
    parts = dict.fromkeys(("claim_builds", "append_build_log", "queue wait metric", "run_seconds metric"), 0.0)
    parts.update({"complete_build": 0.0, "commit": 0.0})
    image = "registry.example/bench:1"
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        slot = "cpu-parts/0"
        build = conn.execute(*client.claim_builds_sql(slot, 1)).fetchone()[0]
        for n in range(builds + 50):  # the first 50 warm the plan caches
            statements = [
                ("append_build_log", client.append_build_log_sql(build, slot, "built\n")),
                ("queue wait metric", client.record_queue_wait_sql(build, slot)),
                ("run_seconds metric", client.record_build_metric_sql(build, slot, "run_seconds", 0.001, "s")),
                ("complete_build", client.complete_build_sql(build, slot, True, image, DIGEST, None)),
                ("claim_builds", client.claim_builds_sql(slot, 1)),
            ]
            conn.execute("BEGIN")
            for part, (sql, params) in statements:
                before = _backend_cpu_ms(conn)
                row = conn.execute(sql, params, prepare=True).fetchone()
                if n >= 50:
                    parts[part] += _backend_cpu_ms(conn) - before
            before = _backend_cpu_ms(conn)
            conn.execute("COMMIT")
            if n >= 50:
                parts["commit"] += _backend_cpu_ms(conn) - before
            build = row[0]
    total = sum(parts.values())
    print(f"\n== the reference worker's statements per build, one connection, {builds:,} builds (/proc, backend) ==")
    for part, ms in parts.items():
        print(f"  {part:20s} {ms * 1000 / builds:6.0f} us  {ms / total:5.1%}")
    print(f"  {'total':20s} {total * 1000 / builds:6.0f} us server CPU per build")
    return {part: ms * 1000 / builds for part, ms in parts.items()}


def function_profile(cycles: int) -> None:
    """Where the project's cycle spends its server time, by SQL function (track_functions = 'all', a superuser
    setting; skipped otherwise): per cycle, each function's total time (with what it calls) and self time (its
    own statements, triggers that are not functions of their own included)."""
    try:
        conn = psycopg.connect(conninfo(), autocommit=True, options="-c track_functions=all")
    except psycopg.Error as exc:
        print(f"  (no function profile: {str(exc).splitlines()[0]})")
        return
    with conn:
        conn.execute("SELECT pg_stat_reset()")
        for _ in range(cycles):
            row = conn.execute(HONUA_CLAIM, ["profile"]).fetchone()
            conn.execute(HONUA_COMPLETE, [row[0], "profile", DIGEST])
    time.sleep(1.5)  # a backend's function statistics reach the shared counters within a second of its exit
    rows = execute(
        "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions"
        " WHERE calls >= %s ORDER BY self_time DESC LIMIT 15",
        [cycles],
    )
    print(f"\n  by function, per cycle ({cycles:,} cycles; us; load inflates every figure alike):")
    print(f"    {'function':<32}{'calls':>7}{'total':>9}{'self':>9}")
    for name, calls, total, own in rows:
        print(f"    {name:<32}{calls / cycles:>7.1f}{total * 1000 / cycles:>9.0f}{own * 1000 / cycles:>9.0f}")


def _bench_license(tier: str, label: str) -> tuple:
    """A fresh customer and license of ``tier`` (quota high enough for any run): (customer id, license id)."""
    row = execute(
        """
        WITH c AS (INSERT INTO customers (name, contact_name, contact_email, publishes_to_shared_cache, metadata)
                   VALUES (%s, '', '', false, '{}') RETURNING id)
        INSERT INTO licenses (customer_id, tier, status, is_trial, license_key_encrypted, license_key_index,
                              feature_overrides, notes, monthly_build_quota_override)
        SELECT c.id, %s, 'active', false, 'v1:0:bench-placeholder', encode(sha256(convert_to(c.id::text, 'UTF8')),
               'hex'), '{}', '', 100000000 FROM c
        RETURNING customer_id, id
        """,
        [f"{label} {tier} {time.time_ns()}", tier],
    )
    return row[0]


def _park_queue() -> None:
    """Nothing else claimable: earlier rounds' builds are cancelled."""
    execute("UPDATE build_queue SET status = 'cancelled', finished_at = now() WHERE status IN ('queued', 'running')")


def enqueue_section(chunk: int, chunks: int) -> list[float]:
    """Enqueues/second of one asp license, ``chunks`` statements of ``chunk`` enqueue_build calls each."""
    print(f"\n== enqueue: one asp license, {chunks} chunks of {chunk:,} (one statement each, one connection) ==")
    customer, _license = _bench_license("asp", "bench enqueue")
    rates = []
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        for i in range(chunks):
            started = time.perf_counter()
            conn.execute(
                "SELECT count(enqueue_build(%s, jsonb_build_object('chunk', %s::int, 'n', g), 5))"
                " FROM generate_series(1, %s) g",
                [customer, i, chunk],
            )
            rates.append(chunk / (time.perf_counter() - started))
            print(f"  builds {i * chunk + 1:>6,}-{(i + 1) * chunk:>6,}: {rates[-1]:,.0f} enqueues/s", flush=True)
    _park_queue()
    return rates


def _drain_claims(conn, claims: int, slots: int) -> list:
    """Claim until ``slots`` run, complete the oldest, repeat; the license of each claim, in order."""
    running, order = collections.deque(), []
    while len(order) < claims:
        while len(running) < slots and len(order) < claims:
            row = conn.execute("SELECT id, license_id FROM get_next_build_for_worker('fair')").fetchone()
            if row is None:
                break
            running.append(row[0])
            order.append(row[1])
        if not running:
            break
        conn.execute(
            "SELECT complete_build(%s, 'fair', true, 'registry.example/fair:1', %s)", [running.popleft(), DIGEST]
        )
    return order


def fairness_section() -> dict:
    """The flood scenario's first-claim indexes and the four tiers' shares of 1,000 claims."""
    print("\n== fairness: the flood scenario, 8 slots draining ==", flush=True)
    _park_queue()
    flood = _bench_license("asp", "bench flood")
    others = {tier: _bench_license(tier, "bench flood") for tier in ("pro", "core", "enterprise")}
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        stamp = time.time_ns()
        conn.execute(
            "SELECT count(enqueue_build(%s, jsonb_build_object('flood', %s::bigint, 'n', g), 5))"
            " FROM generate_series(1, 2000) g",
            [flood[0], stamp],
        )
        for customer, _lic in others.values():
            conn.execute(
                "SELECT count(enqueue_build(%s, jsonb_build_object('other', %s::bigint, 'n', g), 5))"
                " FROM generate_series(1, 10) g",
                [customer, stamp],
            )
        order = _drain_claims(conn, 100, 8)
    first = {tier: order.index(lic) + 1 for tier, (_c, lic) in others.items()}
    for tier, index in first.items():
        print(f"  {tier:<10} first build claimed at claim {index}")
    _park_queue()

    print("== fairness: shares of 1,000 consecutive claims, four tiers backlogged, 8 slots ==", flush=True)
    tenants = {tier: _bench_license(tier, "bench shares") for tier in WEIGHTS}
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        for customer, _lic in tenants.values():
            conn.execute(
                "SELECT count(enqueue_build(%s, jsonb_build_object('share', %s::bigint, 'n', g), 5))"
                " FROM generate_series(1, 700) g",
                [customer, time.time_ns()],
            )
        counts = collections.Counter(_drain_claims(conn, 1000, 8))
    shares = {}
    for tier, (_c, lic) in tenants.items():
        expected = WEIGHTS[tier] / sum(WEIGHTS.values())
        shares[tier] = (counts[lic] / 1000, expected)
        print(f"  {tier:<10} {counts[lic]:>4} claims: share {counts[lic] / 10:.1f}%", end="")
        print(f" (weight share {100 * expected:.1f}%)")
    _park_queue()
    return {"first": first, "shares": shares}


def _procrastinate_env() -> tuple[Path, str]:
    """procrastinate's virtualenv (created and pinned on first use) and its schema.sql's text."""
    venv = OUTPUT / "procrastinate-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = "import importlib.metadata as m; print(m.version('procrastinate'))"
    installed = subprocess.run([str(python), "-c", probe], capture_output=True, text=True).stdout.strip()
    if installed != PROCRASTINATE_VERSION:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"procrastinate=={PROCRASTINATE_VERSION}"], check=True
        )
    where = "import procrastinate, pathlib; print(pathlib.Path(procrastinate.__file__).parent / 'sql' / 'schema.sql')"
    schema = Path(subprocess.run([str(python), "-c", where], capture_output=True, text=True, check=True).stdout.strip())
    return venv, schema.read_text()


def _procrastinate_db(schema: str, clients: int) -> tuple[str, int]:
    """procrastinate's own database (schema applied once) with ``clients`` registered workers: (conninfo, first id)."""
    name = f"{connection.settings_dict['NAME'].removesuffix('_bench_queue')}_bench_procrastinate"
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.make_conninfo(conninfo(), dbname=name)
    with psycopg.connect(info, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]:
            conn.execute(schema)
        conn.execute("DELETE FROM procrastinate_jobs")
        conn.execute("DELETE FROM procrastinate_workers")
        register = "SELECT worker_id FROM procrastinate_register_worker_v1()"
        ids = [conn.execute(register).fetchone()[0] for _ in range(clients)]
    return info, min(ids)


PGBENCH_SCRIPTS = {
    "honua": (
        "SELECT coalesce((SELECT id::text FROM get_next_build_for_worker('pgb-' || :client_id::text)), '')"
        " AS bid \\gset\n"
        # pgbench reads ":name" even inside string literals: the colons of the image are chr(58).
        "SELECT complete_build(NULLIF(:bid::text, '')::uuid, 'pgb-' || :client_id::text, true,"
        " 'registry.example/bench' || chr(58) || '1', 'sha256' || chr(58) || repeat('f', 64), NULL)"
        " WHERE :bid::text <> '';\n"
    ),
    "procrastinate": (
        "SELECT coalesce(id, 0) AS jid FROM procrastinate_fetch_job_v2(NULL, :wid::bigint + :client_id) \\gset\n"
        "SELECT procrastinate_finish_job_v1(:jid::bigint, 'succeeded', false) WHERE :jid::bigint <> 0;\n"
    ),
    "minimal": (
        "WITH c AS (UPDATE bench_minimal_queue SET status = 'running', worker_id = 'pgb', started_at = now()"
        " WHERE id = (SELECT id FROM bench_minimal_queue WHERE status = 'queued'"
        " ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id)"
        " SELECT coalesce((SELECT id FROM c), 0) AS mid \\gset\n"
        "UPDATE bench_minimal_queue SET status = 'succeeded', finished_at = now() WHERE id = :mid::bigint;\n"
    ),
}
DONE_SQL = {
    "honua": "SELECT count(*) FROM build_queue WHERE status = 'succeeded' AND worker_id LIKE 'pgb-%%'",
    "procrastinate": "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'",
    "minimal": "SELECT count(*) FROM bench_minimal_queue WHERE status = 'succeeded' AND worker_id = 'pgb'",
}


def _pgbench(kind: str, info: str, clients: int, seconds: float, variables: dict) -> float:
    """Claim + complete cycles/second of ``kind`` under pgbench (prepared statements), counted in the database."""
    with psycopg.connect(info, autocommit=True) as conn:
        before = conn.execute(DONE_SQL[kind].replace("%%", "%")).fetchone()[0]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(PGBENCH_SCRIPTS[kind])
    params = psycopg.conninfo.conninfo_to_dict(info)
    command = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 4))]
    command += ["-T", str(int(seconds)), "-f", script.name]
    command += [arg for key, value in variables.items() for arg in ("-D", f"{key}={value}")]
    command += ["-h", str(params.get("host", "127.0.0.1")), "-p", str(params.get("port", 5432))]
    command += ["-U", str(params.get("user", "postgres")), str(params["dbname"])]
    result = subprocess.run(command, capture_output=True, text=True)
    Path(script.name).unlink()
    if result.returncode != 0 or re.search(r"aborted|ERROR", result.stderr):
        raise RuntimeError(f"pgbench {kind} failed: {result.stderr[-2000:]}")
    with psycopg.connect(info, autocommit=True) as conn:
        after = conn.execute(DONE_SQL[kind].replace("%%", "%")).fetchone()[0]
    return (after - before) / int(seconds)


def procrastinate_section(rounds: int, seconds: float, queued: int, clients: int = 16) -> list[dict]:
    """Interleaved pgbench rounds: the project, procrastinate and the minimal queue, each on ``queued`` jobs."""
    print(
        f"\n== procrastinate {PROCRASTINATE_VERSION} side by side: pgbench, {clients} clients, {rounds} interleaved"
        f" rounds of {seconds:g} s, >= {queued:,} queued each ==",
        flush=True,
    )
    _venv, schema = _procrastinate_env()
    pinfo, first_worker = _procrastinate_db(schema, clients)
    figures = []
    for number in range(1, rounds + 1):
        _park_queue()
        top_up(queued)
        with psycopg.connect(pinfo, autocommit=True) as conn:
            have = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()[0]
            if have < queued:
                conn.execute(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)"
                    " SELECT 'default', 'bench.noop', 0, jsonb_build_object('n', i) FROM generate_series(1, %s) i",
                    [queued - have],
                )
            conn.execute("VACUUM ANALYZE procrastinate_jobs")
        # The same for the project's and the minimal queue's tables: each round starts from what autovacuum would
        # have left (this benchmark also runs on servers with autovacuum off, where nothing else would).
        execute("VACUUM ANALYZE build_queue, build_license_state, build_member_state, bench_minimal_queue")
        rates, wal = {}, {}
        for kind, info, variables in (
            ("honua", conninfo(), {}),
            ("procrastinate", pinfo, {"wid": first_worker}),
            ("minimal", conninfo(), {}),
        ):
            start = execute("SELECT pg_current_wal_lsn()")[0][0]
            rates[kind] = _pgbench(kind, info, clients, seconds, variables)
            wal[kind] = _wal_window(start, rates[kind] * int(seconds))
        figures.append(rates)
        print(
            f"  round {number}: honua {rates['honua']:,.0f}/s, procrastinate {rates['procrastinate']:,.0f}/s,"
            f" minimal {rates['minimal']:,.0f}/s; honua/procrastinate {rates['honua'] / rates['procrastinate']:.2f}x,"
            f" honua/minimal {rates['honua'] / rates['minimal']:.2f}x",
            flush=True,
        )
        print(
            "    WAL per cycle (full-page images): "
            + ", ".join(f"{kind} {total:,.0f} B ({fpi:,.0f} B)" for kind, (total, fpi, _window) in wal.items()),
            flush=True,
        )
    _park_queue()
    _wal_by_relation(*wal["honua"][2], rates["honua"] * int(seconds))
    return figures


def _walinspect() -> bool:
    """pg_walinspect (PostgreSQL 15+ contrib, superuser) in the benchmark database, when the server has it."""
    try:
        execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    except psycopg.Error:
        return False
    return True


def _wal_window(start: str, cycles: float) -> tuple[float, float, tuple[str, str]]:
    """WAL bytes per cycle since ``start`` (the whole cluster's: one system runs at a time), and the full-page
    images' share of them (0 without pg_walinspect), with the window's bounds."""
    end = execute("SELECT pg_current_wal_lsn()")[0][0]
    total = float(execute("SELECT pg_wal_lsn_diff(%s, %s)", [end, start])[0][0])
    fpi = 0.0
    flushed = _flushed_end(start, end)
    if cycles and flushed and _walinspect():
        stats = "SELECT coalesce(sum(fpi_size), 0) FROM pg_get_wal_stats(%s, %s, false)"
        fpi = float(execute(stats, [start, flushed])[0][0])
    return total / max(cycles, 1), fpi / max(cycles, 1), (start, end)


def _flushed_end(start: str, end: str) -> str | None:
    """``end``, or the flush position if the server has not flushed that far yet (pg_walinspect reads only WAL
    already flushed); None when nothing after ``start`` is."""
    bound, after = execute(
        "SELECT least(%s::pg_lsn, pg_current_wal_flush_lsn()), least(%s::pg_lsn, pg_current_wal_flush_lsn()) > %s",
        [end, end, start],
    )[0]
    return bound if after else None


def _wal_by_relation(start: str, end: str, cycles: float) -> None:
    """Where the project's WAL went in the last round, by relation and record type (pg_walinspect)."""
    end = _flushed_end(start, end)
    if not cycles or end is None or not _walinspect():
        return
    rows = execute(
        """
        SELECT coalesce(c.relname, r.rel, '-'), r.resource_manager || '/' || r.record_type,
               sum(r.record_length) / %s, sum(r.fpi_length) / %s
        FROM (SELECT (regexp_match(block_ref, 'rel \\d+/\\d+/(\\d+)'))[1] AS rel, resource_manager, record_type,
                     record_length, fpi_length
              FROM pg_get_wal_records_info(%s, %s)) r
        LEFT JOIN pg_class c ON c.relfilenode::text = r.rel AND c.relfilenode <> 0
        GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 12
        """,
        [cycles, cycles, start, end],
    )
    print("    the project's WAL per cycle in the last round, by relation (bytes, of which full-page images):")
    for relation, record, total, fpi in rows:
        print(f"      {relation[:40]:<40} {record:<26} {float(total):>7,.0f} ({float(fpi):,.0f})")


def _one_log_line(ctx):
    """The simulated executor at zero work plus one log line (issue 12's worker comparison: not the no-op fast
    path, which skips the log)."""
    from builds.queue.executors import SimulatedExecutor

    ctx.log("built")
    return SimulatedExecutor(noop=True)(ctx)


def worker_comparison(builds: int, concurrency: int = 16) -> dict:
    """Builds/second of the reference worker (one log line per build) and jobs/second of procrastinate's own
    worker on no-op jobs, same size and concurrency, one after the other."""
    from builds.queue.worker import Worker

    print(f"\n== workers: {builds:,} builds/jobs, concurrency {concurrency} ==", flush=True)
    _park_queue()
    top_up(builds)
    execute("DELETE FROM bench_minimal_queue WHERE status = 'queued'")
    # Both drains start from vacuumed tables (procrastinate's script vacuums its own after loading its jobs).
    execute("VACUUM ANALYZE build_queue, build_license_state, build_member_state")
    worker = Worker(executor=_one_log_line, concurrency=concurrency, exit_when_idle=True, reap_interval=0)
    started = time.perf_counter()
    counts = worker.run()
    ours = counts["completed"] / (time.perf_counter() - started)
    connections.close_all()
    venv, schema = _procrastinate_env()
    pinfo, _first = _procrastinate_db(schema, 1)
    script = Path(__file__).resolve().parent / "procrastinate_worker.py"
    result = subprocess.run(
        [str(venv / "bin" / "python"), str(script), pinfo, str(builds), str(concurrency)],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = float(result.stdout.split()[0])
    print(f"  reference worker (one log line per build): {ours:,.0f} builds/s")
    print(f"  procrastinate {PROCRASTINATE_VERSION} worker (no-op jobs): {theirs:,.0f} jobs/s")
    return {"ours": ours, "theirs": theirs}


def report_issue12(enqueue_rates, fairness, procrastinate, workers=None) -> None:
    print("\n== issue 12 targets ==")
    if enqueue_rates:
        drift = abs(enqueue_rates[-1] - enqueue_rates[0]) / enqueue_rates[0]
        print(
            f"  enqueue: first chunk {enqueue_rates[0]:,.0f}/s, last {enqueue_rates[-1]:,.0f}/s ({100 * drift:.0f}%"
            f" apart; target within {100 * ENQUEUE_FLAT_TARGET:.0f}%: {verdict(drift <= ENQUEUE_FLAT_TARGET)});"
            f" target >= {ENQUEUE_RATE_TARGET:,.0f}/s: {verdict(min(enqueue_rates) >= ENQUEUE_RATE_TARGET)}"
        )
    if fairness:
        worst = max(fairness["first"].values())
        print(f"  flood: others' first builds by claim {worst}; target <= {FLOOD_BOUND}:", end=" ")
        print(verdict(worst <= FLOOD_BOUND))
        off = max(abs(got - want) / want for got, want in fairness["shares"].values())
        print(
            f"  shares: worst {100 * off:.1f}% off the weight share; target within {100 * SHARE_TOLERANCE:.0f}%:"
            f" {verdict(off <= SHARE_TOLERANCE)}"
        )
    if procrastinate:
        vs_p = [r["honua"] / r["procrastinate"] for r in procrastinate]
        vs_m = [r["honua"] / r["minimal"] for r in procrastinate]
        print(
            f"  claim + complete, 16 clients: {min(vs_p):.2f}-{max(vs_p):.2f}x procrastinate (target >="
            f" {PROCRASTINATE_RATIO_TARGET}x: {verdict(min(vs_p) >= PROCRASTINATE_RATIO_TARGET)}),"
            f" {min(vs_m):.2f}-{max(vs_m):.2f}x the minimal queue (target >= {MINIMAL_RATIO_TARGET_V2}x:"
            f" {verdict(min(vs_m) >= MINIMAL_RATIO_TARGET_V2)})"
        )
    if workers:
        ratio = workers["ours"] / workers["theirs"]
        print(f"  reference worker vs procrastinate's worker: {ratio:.2f}x; target >= 2x: {verdict(ratio >= 2)}")


def report_history(before: dict, after: dict) -> None:
    """The targets that compare the rounds before and after the history is added."""
    change = abs(after[16]["honua"]["rate"] - before[16]["honua"]["rate"]) / before[16]["honua"]["rate"]
    change_1 = abs(after[1]["honua"]["rate"] - before[1]["honua"]["rate"]) / before[1]["honua"]["rate"]
    print(
        f"  16 connections vs minimal queue: {before[16]['ratio']:.2f}x (empty history), "
        f"{after[16]['ratio']:.2f}x (with history); target >= {RATIO_TARGET}x: "
        f"{verdict(before[16]['ratio'] >= RATIO_TARGET)}"
    )
    print(
        f"  history changes throughput by {100 * change_1:.1f}% (1 connection), {100 * change:.1f}% (16); "
        f"target < {100 * HISTORY_CHANGE_TARGET:.0f}%: {verdict(max(change, change_1) < HISTORY_CHANGE_TARGET)}"
    )
    print(
        f"  single-connection claim p99 with history: {after[1]['honua']['p99']:.2f} ms with its commit, "
        f"{after[1]['honua']['stmt_p99']:.2f} ms the statement alone; target < {P99_TARGET_MS} ms: "
        f"{verdict(after[1]['honua']['p99'] < P99_TARGET_MS)} "
        f"(statement alone: {verdict(after[1]['honua']['stmt_p99'] < P99_TARGET_MS)})"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small smoke run (10k queue, 50k history, 1 s rounds).")
    parser.add_argument("--fresh", action="store_true", help="Drop and recreate the benchmark database first.")
    parser.add_argument(
        "--only",
        choices=("worker", "enqueue", "fairness", "procrastinate", "cost", "history"),
        help="Run one section alone (worker: the reference worker drains, measured exactly as in the full run).",
    )
    args = parser.parse_args()
    queued = 10_000 if args.quick else 100_000
    history = 50_000 if args.quick else 1_000_000
    seconds = 1.0 if args.quick else 5.0
    worker_builds = 2_000 if args.quick else 20_000

    use_database(f"{settings.DATABASES['default']['NAME']}_bench_queue", fresh=args.fresh)
    setup_customers()
    execute("UPDATE build_queue SET status = 'cancelled', finished_at = now() WHERE status IN ('queued', 'running')")
    existing = execute("SELECT count(*) FROM build_queue WHERE source = 'bench-history'")[0][0]
    if existing:
        print("note: the database already holds history from an earlier run; use --fresh for a clean first round")
    connections.close_all()

    if args.only in ("enqueue", "fairness", "procrastinate"):
        enqueue_rates = enqueue_section(2_500 if args.quick else 10_000, 4) if args.only == "enqueue" else None
        fairness = fairness_section() if args.only == "fairness" else None
        rounds = (
            procrastinate_section(1 if args.quick else 3, 2.0 if args.quick else 10.0, queued)
            if args.only == "procrastinate"
            else None
        )
        workers = worker_comparison(worker_builds) if args.only == "procrastinate" else None
        report_issue12(enqueue_rates, fairness, rounds, workers)
        return

    if args.only == "cost":
        cost_per_cycle(200)
        cpu_per_cycle(2_000)
        worker_cpu_parts(4_000)
        return

    if args.only == "worker":
        drains = worker_section(worker_builds)
        best = max(drains[True].values())
        print(
            f"\n  reference worker: {best:,.0f} builds/s; "
            f"target >= {WORKER_TARGET:,.0f}: {verdict(best >= WORKER_TARGET)}"
        )
        return

    before = round_of("empty history", seconds, queued)
    if existing < history:
        add_history(history - existing)
    after = round_of(f"{history:,} finished builds in history", seconds, queued)
    if args.only == "history":
        report_history(before, after)
        return

    drains = worker_section(worker_builds)
    best = max(drains[True].values())
    async_drains = drains[False]

    print("\n== enqueue-to-claim latency, idle listening worker (LISTEN/NOTIFY, poll interval 30 s) ==", flush=True)
    p50, p99 = enqueue_to_claim(50 if args.quick else 200)
    print(f"  p50 {p50:.2f} ms, p99 {p99:.2f} ms")

    wal = wal_per_cycle(200)
    cost_per_cycle(200)
    enqueue_rates = enqueue_section(2_500 if args.quick else 10_000, 4)
    fairness = fairness_section()
    rounds = procrastinate_section(1 if args.quick else 3, 2.0 if args.quick else 10.0, queued)
    workers = worker_comparison(worker_builds)
    print("\n== targets ==")
    report_history(before, after)
    print(
        f"  reference worker: {best:,.0f} builds/s; target >= {WORKER_TARGET:,.0f}: {verdict(best >= WORKER_TARGET)}"
        f" (opt-in --no-synchronous-commit: {max(async_drains.values()):,.0f} builds/s)"
    )
    print(
        f"  enqueue-to-claim p50: {p50:.2f} ms; target < {NOTIFY_P50_TARGET_MS} ms: "
        f"{verdict(p50 < NOTIFY_P50_TARGET_MS)}"
    )
    print(f"  WAL written per claim + complete cycle: {wal['honua']:,.0f} bytes (minimal queue {wal['minimal']:,.0f})")
    report_issue12(enqueue_rates, fairness, rounds, workers)
    print("\nnote: figures depend on the machine; this one is shared with other work unless stated otherwise.")


if __name__ == "__main__":
    main()
