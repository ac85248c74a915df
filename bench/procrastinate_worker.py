"""procrastinate's own worker draining no-op jobs: run by ``bench/queue_throughput.py`` with the interpreter of
procrastinate's virtualenv (``bench/output/procrastinate-venv``), never the project's.

    python bench/procrastinate_worker.py CONNINFO JOBS CONCURRENCY   # prints jobs/second
"""

import asyncio
import sys
import time

import procrastinate
import psycopg


def main() -> None:
    conninfo, jobs, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_jobs")
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)"
            " SELECT 'default', 'bench.noop', 0, jsonb_build_object('n', i) FROM generate_series(1, %s) i",
            [jobs],
        )
        conn.execute("VACUUM ANALYZE procrastinate_jobs")  # as the project's tables before its drain
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="bench.noop")
    def noop(**kwargs) -> None:
        return None

    async def drain() -> float:
        async with app.open_async():
            started = time.perf_counter()
            await app.run_worker_async(concurrency=concurrency, wait=False, install_signal_handlers=False)
            return time.perf_counter() - started

    elapsed = asyncio.run(drain())
    with psycopg.connect(conninfo, autocommit=True) as conn:
        done = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[0]
    print(f"{done / elapsed:.1f} {done}")


if __name__ == "__main__":
    main()
