"""The seed's six-month volume for 100 customers, generated set-based in PostgreSQL (INSERT ... SELECT over
generate_series), repeatable: ``setseed()`` drives ``random()`` and ids are ``md5(seed, kind, n)``.

Shape (at ``fraction=1``): 100 customers (5 ASP, 20 enterprise, 35 pro, 40 core) with their licenses and
registry credentials; 10,000 conversations with ~100,000 messages, ~20,000 intents, ~30,000 extractions and
~10,000 manifests; 50,000 builds (one per submitted manifest, the rest from the API) with results, ~500,000
events, metrics and artifacts; 10,000 cache entries and 1,000,000 cache lookups. Customers are skewed (a power
law: the biggest customer has ~12% of the traffic, the smallest a few rows), activity grows over the six months,
and manifests repeat (a skewed pool of templates), so cache hits are realistic.

This module is the orchestration only: the parameters, the session settings, the monthly partitions before the
load and ANALYZE after it. Each app writes its own tables' steps in its ``seed.py`` (``licensing``, ``intake``,
``builds.queue``, ``builds.cache``), registered with ``honua.registry.seed_step`` and run here in their ``order``,
all in one transaction: ``random()`` is drawn in that order, so the order is part of the data.

Triggers are switched off for the load (``session_replication_role = replica``) when the role may do so, and the
totals they would keep (conversation totals, cache hit counts) are computed here instead; every CHECK constraint
still applies, and every foreign key is satisfied by construction (the tests check both).
"""

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.utils import timezone

from honua.registry import SeedStatement, seed_steps

SEED_SCALE = "six-months"
SPAN_DAYS = 182
CUSTOMERS = 100
# Issue 15: the same six months at ten times the customers and every volume (each scale's volumes are VOLUME times
# its multiplier; the customers' tiers, skew and deletions keep their shares).
SCALE_MULTIPLIERS = {"six-months": 1, "ten-x": 10}
VOLUME = {  # at fraction 1: the seed's estimate
    "conversations": 10_000,
    "builds": 50_000,
    "cache_entries": 10_000,
    "access_log": 1_000_000,
    "templates": 3_000,
}
TABLES = (
    "customers",
    "licenses",
    "registry_credentials",
    "conversations",
    "conversation_messages",
    "conversation_intents",
    "requirement_extractions",
    "build_manifests",
    "build_queue",
    "build_results",
    "build_events",
    "build_metrics",
    "build_artifacts",
    "build_cache_registry",
    "build_access_log",
)

Progress = Callable[[int, int, str], None]

# The load's session settings (SET LOCAL: the transaction's only). The memory is for one statement at a time: the
# hash aggregates and sorts of ten times the seed (millions of groups) spill less, and the deferred indexes are
# sorted in memory, by the leader and its parallel workers (64 MB allowed one worker at most). JIT stays as the server
# has it: switched off, the 10 M-row statements of ten times the seed took more CPU than their compilation saved
# (the access log's INSERT 59 s against 48 s; docs/performance.md, "The seed's generation step by step").
LOAD_SETTINGS = {
    "synchronous_commit": "off",
    "work_mem": "256MB",
    "maintenance_work_mem": "1GB",
}
# And when the server takes them: the full-page images in the WAL compressed (a superuser's, or SET granted on it;
# every deferred index is WAL-logged page by page when it is rebuilt), and
# temp_buffers only takes before the session's first temporary table (a second load in one session keeps the first's):
# the temporary tables of ten times the seed (10 M lookups drawn: ~600 MB) get 1 GB of local buffers instead of 8 MB.
LOAD_SETTINGS_IF_ALLOWED = {"wal_compression": "lz4", "temp_buffers": "1GB"}


def seed_anchor() -> datetime:
    """The end of the six months: the start of the current UTC hour (the same data for a seed within an hour)."""
    return timezone.now().replace(minute=0, second=0, microsecond=0)


def _month_partitions(cursor, params) -> None:
    """Monthly partitions for every seeded month, before anything is loaded: else the seeded history lands in the
    DEFAULT partitions, and the first daily maintenance moves all of it (builds.0031_partitions). Skipped on a
    database migrated to before the partitions (the conversion's test seeds one)."""
    cursor.execute("SELECT to_regproc('public.partition_create_month') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return
    cursor.execute(
        """SELECT count(*) FILTER (WHERE partition_create_month(t.parent, m))
        FROM (SELECT partrelid::regclass AS parent FROM pg_partitioned_table) t
        CROSS JOIN generate_series(date_trunc('month', %(anchor)s::timestamptz - interval '8 months', 'UTC'),
                                   %(anchor)s::timestamptz + interval '1 month', interval '1 month') m""",
        params,
    )


# What the load updates after inserting keeps its indexes. The small tables whose rows it updates (the secrets, the
# conversations' totals, the cache entries' hit counts) keep all of theirs, and build_queue the one index on the
# column it updates (cache_entry_id, a partial index that is empty during the load): an update that changes an
# indexed column is not HOT. Two reasons: an index built over rows updated in place (HOT) by this transaction is
# marked ``indcheckxmin`` and no query of the same transaction may use it (the summaries need build_queue's), and
# a HOT update leaves the new row version where a non-HOT one would not, and later steps draw random() in the
# order they read build_queue, so the data would change.
KEEP_INDEXES_OF = ("licenses", "registry_credentials", "conversations", "build_cache_registry")
KEEP_INDEXES = ("build_queue_cache_entry_idx",)
# Tables the load fills that are not among TABLES (they are summaries, not counted in the seed's output) but whose
# secondary indexes are set aside as well: the cache access rollup is recounted in one INSERT of millions of rows
# at ten times the seed (3.5 M rows), where its partial index on the entry (random uuids) took an insert per row.
ALSO_DEFER_INDEXES_OF = ("build_cache_access_rollup",)
# Steps from this order on summarise the loaded rows (the scheduler's counters, the daily rollups): they read the
# tables through their indexes, so the secondary indexes dropped for the load are rebuilt just before them.
SUMMARY_ORDER = 700


# pg_get_indexdef prints ``status IN ('a', 'b')`` (status a varchar) as a text comparison with a cast array,
# which parses back to a different (equivalent) expression; written as the IN list again it parses back exactly.
_CAST_ARRAY_IN = re.compile(
    r"\((\w+)\)::text = ANY \(\(ARRAY\[((?:'(?:[^']|'')*'::character varying(?:, )?)+)\]\)::text\[\]\)"
)
_PROBE = "seed_index_probe"


def _rebuild_definition(cursor, name: str, definition: str) -> str | None:
    """SQL that recreates index ``name`` exactly (``pg_get_indexdef`` prints the same), found by building it under
    another name on the still empty table; None when neither the printed definition nor its IN-list form does."""
    head = f"INDEX {name} ON "
    # Named after the backend: the two connections of a parallel load probe at once, and a name taken (or dropped)
    # in the other's open transaction would wait for its end (pg_class's unique name).
    cursor.execute("SELECT pg_backend_pid()")
    probe = f"{_PROBE}_{cursor.fetchone()[0]}"
    for candidate in dict.fromkeys((definition, _CAST_ARRAY_IN.sub(r"\1 IN (\2)", definition))):
        cursor.execute(candidate.replace(head, f"INDEX {probe} ON ", 1))
        cursor.execute(f"SELECT pg_get_indexdef('{probe}'::regclass)")
        printed = cursor.fetchone()[0]
        cursor.execute(f"DROP INDEX {probe}")
        if printed.replace(f"INDEX {probe} ON ", head, 1) == definition:
            return candidate
    return None


def _defer_indexes(cursor, params, tables=(*TABLES, *ALSO_DEFER_INDEXES_OF)) -> None:
    """Drop the secondary indexes of every seeded table that is still empty, remembering how to rebuild them in
    ``seed_deferred_indexes`` (which :func:`_rebuild_indexes` reads): building an index once over the loaded rows
    costs a fraction of maintaining it row by row. Only plain indexes: unique ones and any that back a constraint
    (primary keys, exclusion constraints) stay, so every constraint is checked during the load as before. A
    partitioned table's index is dropped at the top (its partitions' indexes go with it) and rebuilt the way
    ``partition_create_month`` made it: ``ON ONLY`` the parent, each partition's own under its own name, attached.
    An index whose definition would not come back exactly stays, with its whole partition family."""
    cursor.execute(
        """CREATE TEMP TABLE seed_deferred_indexes (name text, definition text, parent text, root text, level int)
        ON COMMIT DROP"""
    )
    for table in tables:
        if table in KEEP_INDEXES_OF:
            continue
        # Table names are this module's constants, never input.
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if not cursor.fetchone()[0]:
            continue  # a database migrated only to a point before it
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
        if cursor.fetchone()[0]:
            continue  # not a fresh load: keep its indexes (rebuilding them would re-read its rows)
        cursor.execute(
            """WITH RECURSIVE tree AS (  -- the table and, when it is partitioned, its partitions
                SELECT %(table)s::regclass AS relid, 0 AS level
                UNION ALL
                SELECT relid, level FROM pg_partition_tree(%(table)s::regclass) WHERE level > 0
            ), candidates AS (
                SELECT i.indexrelid,
                       (SELECT h.inhparent FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) AS parent, tree.level
                FROM tree JOIN pg_index i ON i.indrelid = tree.relid
                WHERE NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion AND i.indisvalid
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                  AND i.indexrelid::regclass::text <> ALL (%(keep)s)
            ), family AS (  -- each index with the top index of its partition family
                SELECT indexrelid, parent, level, indexrelid AS root FROM candidates WHERE parent IS NULL
                UNION ALL
                SELECT c.indexrelid, c.parent, c.level, f.root
                FROM candidates c JOIN family f ON c.parent = f.indexrelid
            )
            SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid), parent::regclass::text,
                   root::regclass::text, level
            FROM family ORDER BY level, 1""",
            {"table": table, "keep": list(KEEP_INDEXES)},
        )
        indexes = cursor.fetchall()
        rebuild = {name: _rebuild_definition(cursor, name, definition) for name, definition, *_ in indexes}
        kept_roots = {root for name, _, _, root, _ in indexes if rebuild[name] is None}
        cursor.executemany(
            "INSERT INTO seed_deferred_indexes (name, definition, parent, root, level) VALUES (%s, %s, %s, %s, %s)",
            [
                (name, rebuild[name], parent, root, level)
                for name, _, parent, root, level in indexes
                if root not in kept_roots
            ],
        )
    cursor.execute("SELECT name FROM seed_deferred_indexes WHERE parent IS NULL ORDER BY name")
    for (name,) in cursor.fetchall():
        cursor.execute(f"DROP INDEX {name}")


def _rebuild_indexes(cursor, params) -> None:
    """Recreate what :func:`_defer_indexes` dropped, with the same names and definitions (parents first)."""
    cursor.execute("SELECT name, definition, parent FROM seed_deferred_indexes ORDER BY level, name")
    for name, definition, parent in cursor.fetchall():
        cursor.execute(definition)
        if parent is not None:
            cursor.execute(f"ALTER INDEX {parent} ATTACH PARTITION {name}")


def _defer_indexes_but_the_parallel_tables(cursor, params) -> None:
    """:func:`_defer_indexes` for the tables the first connection of a parallel load fills (the second sets aside
    and rebuilds its own: the first must not lock them)."""
    _defer_indexes(cursor, params, tuple(t for t in (*TABLES, *ALSO_DEFER_INDEXES_OF) if t not in PARALLEL_TABLES))


def steps(parallel: bool = False) -> list[tuple[str, tuple[SeedStatement, ...]]]:
    """The load in order: the monthly partitions, the secondary indexes set aside, every app's registered seed
    steps (``<app>/seed.py``, by their ``order``) with the indexes rebuilt before the first step that summarises
    (``SUMMARY_ORDER``), then fresh statistics for the planner. Each statement: SQL, or a callable(cursor,
    params). ``parallel``: the first connection's list of a parallel load (the partitions were made and committed
    before it, and the second connection's tables keep their indexes here; ``PARALLEL_STEP`` is still listed, for
    its place, but runs on the second connection)."""
    app_steps = seed_steps()
    if parallel:
        return [
            ("indexes set aside for the load", (_defer_indexes_but_the_parallel_tables,)),
            *[(step.name, step.statements) for step in app_steps if step.order < SUMMARY_ORDER],
            ("indexes rebuilt", (_rebuild_indexes,)),
            *[(step.name, step.statements) for step in app_steps if step.order >= SUMMARY_ORDER],
            ("statistics (ANALYZE)", tuple(f"ANALYZE {table}" for table in TABLES)),
        ]
    load = [(step.name, step.statements) for step in app_steps if step.order < SUMMARY_ORDER]
    summaries = [(step.name, step.statements) for step in app_steps if step.order >= SUMMARY_ORDER]
    return [
        ("monthly partitions", (_month_partitions,)),
        ("indexes set aside for the load", (_defer_indexes,)),
        *load,
        ("indexes rebuilt", (_rebuild_indexes,)),
        *summaries,
        ("statistics (ANALYZE)", tuple(f"ANALYZE {table}" for table in TABLES)),
    ]


class SeedIncompleteError(RuntimeError):
    """An earlier parallel load of this database did not finish (and could not clean up after itself)."""


def already_seeded(scale: str = SEED_SCALE) -> int:
    """How many seed customers of ``scale`` exist (0: not loaded); :class:`SeedIncompleteError` when an earlier
    parallel load left its marker (``INCOMPLETE_MARKER``): the database holds part of a seed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [INCOMPLETE_MARKER])
        if cursor.fetchone()[0]:
            raise SeedIncompleteError(
                f"an earlier seed of this database did not finish (table {INCOMPLETE_MARKER} is still there): the "
                "database holds part of a seed; drop it and migrate a fresh one"
            )
        cursor.execute(
            "SELECT count(*) FROM customers WHERE metadata @> jsonb_build_object('scale', %s::text)", [scale]
        )
        return cursor.fetchone()[0]


def _set_if_allowed(setting: str, value: str) -> bool:
    """SET LOCAL ``setting`` on the default connection when the server takes it (a superuser parameter needs a
    superuser or SET granted on it; some take only at some moments); False when it did not."""
    with transaction.atomic(), connection.cursor() as cursor:
        return _try_set(cursor, setting, value)


def _apply_load_settings(cursor) -> None:
    """The load's session settings, for the transaction of ``cursor`` (which must be in one)."""
    for setting, value in LOAD_SETTINGS.items():
        cursor.execute("SELECT set_config(%s, %s, true)", [setting, value])
    for setting, value in LOAD_SETTINGS_IF_ALLOWED.items():
        _try_set(cursor, setting, value)


def _run(cursor, statements, params) -> None:
    """A step's statements: SQL run with the seed's parameters, or callables given the cursor and them."""
    for statement in statements:
        if callable(statement):
            statement(cursor, params)
        else:
            cursor.execute(statement, params)


def _disable_triggers() -> bool:
    """Skip triggers for this transaction when allowed."""
    return _set_if_allowed("session_replication_role", "replica")


def _step_seed(seed: int, step: str) -> float:
    """A step's own ``setseed`` value in [0, 1), derived from the seed and the step's name."""
    digest = hashlib.sha256(f"honua-seed:{seed}:{step}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % 2_000_003) / 2_000_003


def generate(
    *,
    seed: int,
    fraction: float = 1.0,
    progress: Progress | None = None,
    scale: str = SEED_SCALE,
    parallel: bool | None = None,
) -> dict[str, int]:
    """Load the six-month data set; returns each table's row count.

    ``scale`` multiplies the customers and every volume (``SCALE_MULTIPLIERS``: ``ten-x`` is 1,000 customers);
    ``fraction`` scales the volumes (for tests and quick benchmarks); the customers are always created.
    ``parallel``: load on two connections (:func:`_generate_parallel`), which commits; None (the default) does so
    when it can (outside any transaction, into a fresh database, with triggers switchable off), else the load runs
    in one transaction, the caller's when there is one. Both give the same rows.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if scale not in SCALE_MULTIPLIERS:
        raise ValueError(f"scale must be one of {', '.join(SCALE_MULTIPLIERS)}, got {scale!r}")
    multiplier = SCALE_MULTIPLIERS[scale]
    anchor = seed_anchor()
    params = {
        "seed": seed,
        "setseed": (seed % 2_000_003) / 2_000_003,
        "anchor": anchor,
        "span": SPAN_DAYS,
        "scale": scale,
        "customers": CUSTOMERS * multiplier,
        **{name: max(int(volume * multiplier * fraction), 20) for name, volume in VOLUME.items()},
    }
    params["entries"] = params["cache_entries"]
    params["setseed_access_log"] = _step_seed(seed, PARALLEL_STEP)
    if parallel is not False:
        reason = _why_not_in_parallel()
        if parallel and reason:
            raise ValueError(reason)
        parallel = reason is None
    if parallel:
        return _generate_parallel(params, progress)
    with transaction.atomic(), connection.cursor() as cursor:
        triggers_off = _disable_triggers()
        _apply_load_settings(cursor)
        load = steps()
        for index, (label, statements) in enumerate(load):
            if progress is not None:
                progress(index, len(load), label)
            _run(cursor, statements, params)
        if progress is not None:
            progress(len(load), len(load), "done")
        if triggers_off:
            cursor.execute("SET LOCAL session_replication_role = origin")
        counts = {}
        for table in TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


# The parallel load (issue 15: the second core). The whole load is one transaction on one connection unless
# generate() can load in parallel: then the cache access log (10 M rows at ten times the seed: a third of the load's
# CPU) runs on a second connection while the first goes on with the builds. The log reads only the temporary tables
# named here, which the first connection copies over once they are drawn, and draws from a random() sequence of
# its own; its counters and rollup (the next step) are made on the first connection from what the second returns.
PARALLEL_STEP = "cache access log"
PARALLEL_INPUTS = ("seed_customers", "seed_templates", "seed_entries")
PARALLEL_OUTPUTS = ("seed_access_hits",)
# The tables only the second connection writes: it sets their indexes aside and rebuilds them, and the first does
# not touch them (no lock) until the second has committed.
PARALLEL_TABLES = ("build_access_log",)
# Created and committed first, dropped in the first connection's (last) commit: while it exists, the database holds
# part of a seed (already_seeded refuses it).
INCOMPLETE_MARKER = "seed_incomplete"


def _why_not_in_parallel() -> str | None:
    """None when the load may run on two connections: outside any transaction (it commits), triggers switchable
    off (the second connection's rows point at rows the first has not committed yet), and a fresh database (a
    failure is cleaned up by emptying the tables); else the reason."""
    if connection.in_atomic_block:
        return "a parallel load commits on two connections: it cannot run inside a transaction"
    if connection.vendor != "postgresql" or not _disable_triggers():
        return "a parallel load needs PostgreSQL and a role that may switch triggers off"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NULL", [INCOMPLETE_MARKER])
        if not cursor.fetchone()[0]:
            return f"an earlier load left {INCOMPLETE_MARKER}"
        for table in TABLES:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
            if cursor.fetchone()[0]:
                return f"a parallel load needs a fresh database ({table} has rows)"
    return None


def _copy_out(cursor, table: str) -> tuple[str, bytes, list[str]]:
    """Temporary table ``table``: its columns (SQL), rows (binary COPY) and index definitions."""
    cursor.execute(
        """SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
        FROM pg_attribute WHERE attrelid = ('pg_temp.' || %s)::regclass AND attnum > 0 AND NOT attisdropped""",
        [table],
    )
    columns = cursor.fetchone()[0]
    cursor.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = ('pg_temp.' || %s)::regclass ORDER BY 1",
        [table],
    )
    indexes = [re.sub(r" ON pg_temp_\d+\.", " ON pg_temp.", definition) for (definition,) in cursor.fetchall()]
    chunks = []
    with cursor.copy(f"COPY {table} TO STDOUT (FORMAT binary)") as copy:
        for chunk in copy:
            chunks.append(bytes(chunk))
    return columns, b"".join(chunks), indexes


def _copy_in(cursor, table: str, shipped: tuple[str, bytes, list[str]]) -> None:
    columns, data, indexes = shipped
    cursor.execute(f"CREATE TEMP TABLE {table} ({columns}) ON COMMIT DROP")
    with cursor.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
        copy.write(data)
    for definition in indexes:
        cursor.execute(definition)
    cursor.execute(f"ANALYZE {table}")


def _try_set(cursor, setting: str, value: str) -> bool:
    """SET LOCAL ``setting`` in the transaction of ``cursor`` when the server takes it; False when it did not (a
    savepoint keeps the transaction usable after the refusal)."""
    cursor.execute("SAVEPOINT seed_setting")
    try:
        cursor.execute("SELECT set_config(%s, %s, true)", [setting, value])
    except DatabaseError:
        cursor.execute("ROLLBACK TO SAVEPOINT seed_setting")
        return False
    cursor.execute("RELEASE SAVEPOINT seed_setting")
    return True


class _SecondConnection(threading.Thread):
    """``PARALLEL_STEP`` on a connection of its own, in a transaction of its own that it commits when done."""

    def __init__(self, statements, params, inputs: dict[str, tuple[str, bytes, list[str]]]):
        super().__init__(name="seed-second-connection", daemon=True)
        self.statements, self.params, self.inputs = statements, params, inputs
        self.outputs: dict[str, tuple[str, bytes, list[str]]] = {}
        self.error: BaseException | None = None
        self.committed = False
        self.wrapper = None

    def run(self) -> None:
        wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
        self.wrapper = wrapper
        try:
            wrapper.ensure_connection()
            wrapper.set_autocommit(False)
            with wrapper.cursor() as cursor:
                if not _try_set(cursor, "session_replication_role", "replica"):
                    raise RuntimeError("the second connection may not switch triggers off")
                # It never needs a lock the first connection holds: a long wait is a conflict with it (which would
                # wait forever, the first waiting for this one), so it fails instead.
                cursor.execute("SELECT set_config('lock_timeout', '120s', true)")
                _apply_load_settings(cursor)
                for table, shipped in self.inputs.items():
                    _copy_in(cursor, table, shipped)
                _defer_indexes(cursor, self.params, PARALLEL_TABLES)
                _run(cursor, self.statements, self.params)
                _rebuild_indexes(cursor, self.params)
                for table in PARALLEL_TABLES:
                    cursor.execute(f"ANALYZE {table}")
                self.outputs = {table: _copy_out(cursor, table) for table in PARALLEL_OUTPUTS}
            wrapper.commit()
            self.committed = True
        except BaseException as error:  # reported to the first connection, which raises it
            self.error = error
            with contextlib.suppress(Exception):
                wrapper.rollback()
        finally:
            wrapper.close()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"seed step {PARALLEL_STEP!r} failed on the second connection: {self.error}") from (
                self.error
            )

    def stop(self) -> None:
        """Cancel what it runs (after a failure of the first connection) and wait for it."""
        if self.is_alive() and self.wrapper is not None and self.wrapper.connection is not None:
            with contextlib.suppress(Exception):
                self.wrapper.connection.cancel()
        self.join()


def _generate_parallel(params, progress: Progress | None) -> dict[str, int]:
    """The load on two connections. First, committed: the marker (``INCOMPLETE_MARKER``) and the monthly partitions.
    Then the first connection runs every step in one transaction as the serial load does, except ``PARALLEL_STEP``:
    once the steps it reads from are done, their temporary tables are copied to a second connection, which runs it
    and commits; the first waits for it before the first step that reads its result, and drops the marker in its
    own commit, last. A failure of either rolls back the first, cancels the second, and empties the second's tables
    (the database was fresh) and drops the marker; if even that fails, the marker stays."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {INCOMPLETE_MARKER} (scale text, seed bigint, started_at timestamptz)")
        cursor.execute(f"INSERT INTO {INCOMPLETE_MARKER} VALUES (%(scale)s, %(seed)s, now())", params)
        _month_partitions(cursor, params)
    registered = {step.name: step for step in seed_steps()}
    load = steps(parallel=True)
    labels = [label for label, _ in load]
    start_after = max(labels.index(name) for name in registered[PARALLEL_STEP].after)
    wait_before = min(
        index for index, label in enumerate(labels) if PARALLEL_STEP in getattr(registered.get(label), "after", ())
    )
    second = _SecondConnection(registered[PARALLEL_STEP].statements, params, {})
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if not _disable_triggers():
                raise RuntimeError("the parallel load needs the triggers off")
            _apply_load_settings(cursor)
            for index, (label, statements) in enumerate(load):
                second.raise_if_failed()
                if index == wait_before:
                    second.join()
                    second.raise_if_failed()
                    for table, shipped in second.outputs.items():
                        _copy_in(cursor, table, shipped)
                if progress is not None:
                    progress(index, len(load), label + (" (second connection)" if label == PARALLEL_STEP else ""))
                if label != PARALLEL_STEP:
                    _run(cursor, statements, params)
                if index == start_after:
                    second.inputs = {table: _copy_out(cursor, table) for table in PARALLEL_INPUTS}
                    second.start()
            if progress is not None:
                progress(len(load), len(load), "done")
            cursor.execute("SET LOCAL session_replication_role = origin")
            counts = {}
            for table in TABLES:
                cursor.execute(f"SELECT count(*) FROM {table}")
                counts[table] = cursor.fetchone()[0]
            cursor.execute(f"DROP TABLE {INCOMPLETE_MARKER}")
    except BaseException:
        if second.is_alive() or second.ident is not None:
            second.stop()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for table in PARALLEL_TABLES:
                    cursor.execute(f"TRUNCATE {table}")
                cursor.execute(f"DROP TABLE {INCOMPLETE_MARKER}")
        except DatabaseError:
            pass  # the marker stays: already_seeded refuses the half-seeded database
        raise
    return counts


def summary(counts: dict[str, int], seconds: float, scale: str = SEED_SCALE) -> str:
    parts = ", ".join(f"{counts[table]:,} {table}" for table in TABLES)
    return f"{scale} data in {seconds:.1f} s: {parts}"


def timed_generate(
    *,
    seed: int,
    fraction: float = 1.0,
    progress: Progress | None = None,
    scale: str = SEED_SCALE,
    parallel: bool | None = None,
) -> str:
    start = time.monotonic()
    counts = generate(seed=seed, fraction=fraction, progress=progress, scale=scale, parallel=parallel)
    return summary(counts, time.monotonic() - start, scale)
