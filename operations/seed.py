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

import re
import time
from collections.abc import Callable
from datetime import datetime

from django.db import DatabaseError, connection, transaction
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
    for candidate in dict.fromkeys((definition, _CAST_ARRAY_IN.sub(r"\1 IN (\2)", definition))):
        cursor.execute(candidate.replace(head, f"INDEX {_PROBE} ON ", 1))
        cursor.execute(f"SELECT pg_get_indexdef('{_PROBE}'::regclass)")
        printed = cursor.fetchone()[0]
        cursor.execute(f"DROP INDEX {_PROBE}")
        if printed.replace(f"INDEX {_PROBE} ON ", head, 1) == definition:
            return candidate
    return None


def _defer_indexes(cursor, params) -> None:
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
    for table in (*TABLES, *ALSO_DEFER_INDEXES_OF):
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


def steps() -> list[tuple[str, tuple[SeedStatement, ...]]]:
    """The load in order: the monthly partitions, the secondary indexes set aside, every app's registered seed
    steps (``<app>/seed.py``, by their ``order``) with the indexes rebuilt before the first step that summarises
    (``SUMMARY_ORDER``), then fresh statistics for the planner. Each statement: SQL, or a callable(cursor,
    params)."""
    app_steps = seed_steps()
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


def already_seeded(scale: str = SEED_SCALE) -> int:
    """How many seed customers of ``scale`` exist (0: not loaded)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM customers WHERE metadata @> jsonb_build_object('scale', %s::text)", [scale]
        )
        return cursor.fetchone()[0]


def _set_if_allowed(setting: str, value: str) -> bool:
    """SET LOCAL ``setting`` when the server takes it (a superuser parameter needs a superuser or SET granted on it;
    some take only at some moments); False when it did not."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, true)", [setting, value])
        return True
    except DatabaseError:
        return False


def _disable_triggers() -> bool:
    """Skip triggers for this transaction when allowed."""
    return _set_if_allowed("session_replication_role", "replica")


def generate(
    *, seed: int, fraction: float = 1.0, progress: Progress | None = None, scale: str = SEED_SCALE
) -> dict[str, int]:
    """Load the six-month data set inside the caller's transaction; returns each table's row count.

    ``scale`` multiplies the customers and every volume (``SCALE_MULTIPLIERS``: ``ten-x`` is 1,000 customers);
    ``fraction`` scales the volumes (for tests and quick benchmarks); the customers are always created.
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
    with transaction.atomic(), connection.cursor() as cursor:
        triggers_off = _disable_triggers()
        for setting, value in LOAD_SETTINGS.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [setting, value])
        for setting, value in LOAD_SETTINGS_IF_ALLOWED.items():
            _set_if_allowed(setting, value)
        load = steps()
        for index, (label, statements) in enumerate(load):
            if progress is not None:
                progress(index, len(load), label)
            for statement in statements:
                if callable(statement):
                    statement(cursor, params)
                else:
                    cursor.execute(statement, params)
        if progress is not None:
            progress(len(load), len(load), "done")
        if triggers_off:
            cursor.execute("SET LOCAL session_replication_role = origin")
        counts = {}
        for table in TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


def summary(counts: dict[str, int], seconds: float, scale: str = SEED_SCALE) -> str:
    parts = ", ".join(f"{counts[table]:,} {table}" for table in TABLES)
    return f"{scale} data in {seconds:.1f} s: {parts}"


def timed_generate(
    *, seed: int, fraction: float = 1.0, progress: Progress | None = None, scale: str = SEED_SCALE
) -> str:
    start = time.monotonic()
    counts = generate(seed=seed, fraction=fraction, progress=progress, scale=scale)
    return summary(counts, time.monotonic() - start, scale)
