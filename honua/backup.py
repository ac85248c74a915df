"""Logical backups (``pg_dump --format=custom``) with a manifest, and a restore drill that proves one restores.

``backup_create`` exports a snapshot from a repeatable-read transaction, counts every table's rows and checksums
a sample of rows in that snapshot, and has ``pg_dump --snapshot`` dump exactly that snapshot: the manifest beside
the dump (``<dump>.json``) describes the dump's own contents, even while the system is busy. ``restore_drill``
restores a dump into a new, empty database and checks it against the manifest: the file's SHA-256,
``verify_migrations``, every table's row count, and the sampled rows' checksums. docs/operations.md ("Backup and
restore") says why a logical dump and what base backups with WAL archiving would add.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection
from psycopg import sql

from honua.embedded_pg import EmbeddedServerError, client_binary
from honua.scratch_db import database_url, run_manage, scratch_database

MANIFEST_FORMAT = 1
KEY_TYPE = re.compile(r"[a-z][a-z0-9 _(),]*")  # a primary key's type as format_type() spells it
SAMPLE_ROWS = 20
DUMP_SUFFIX = ".dump"
MANIFEST_SUFFIX = ".json"
NO_DUMP = "no backup in {folder} (make one with manage.py backup)"
NO_MANIFEST = "{dump} has no manifest beside it ({manifest}); a drill needs the counts recorded at backup time"
# Row text must not depend on the session: the same settings when sampling and when checking.
SESSION_SETTINGS = (
    "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 1; SET bytea_output = 'hex'"
)

# Every table that holds rows (partitioned parents count their partitions; partitions are not listed apart),
# with its single-column primary key if it has one.
TABLES_SQL = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
-- The sample's key: a one-column primary key, or the id leading a partitioned table's (id, <month column>) key,
-- which is unique on its own (one identity sequence; builds.0031_partitions).
LEFT JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p' AND (cardinality(k.conkey) = 1 OR c.relkind = 'p')
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.conkey[1]
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2
"""


class BackupError(RuntimeError):
    """A backup or a drill could not run (a missing binary, no dump, pg_dump or pg_restore failed)."""


@dataclasses.dataclass(frozen=True)
class Backup:
    dump: Path
    manifest: Path
    size_bytes: int
    tables: int
    rows: int
    seconds: float


@dataclasses.dataclass
class DrillReport:
    dump: Path
    checks: list[tuple[bool, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    kept_database: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for ok, _ in self.checks)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append((ok, text))

    def failures(self) -> list[str]:
        return [text for ok, text in self.checks if not ok]


def default_folder() -> Path:
    return Path(settings.BASE_DIR) / ".honua" / "backups"


def _libpq_env(settings_dict: dict, database: str | None = None) -> dict[str, str]:
    """The environment a client program connects with: the password in PGPASSWORD, never on its command line."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(
        PGHOST=settings_dict["HOST"] or "",
        PGPORT=str(settings_dict["PORT"] or ""),
        PGUSER=settings_dict["USER"] or "",
        PGDATABASE=database or settings_dict["NAME"],
    )
    if settings_dict.get("PASSWORD"):
        env["PGPASSWORD"] = settings_dict["PASSWORD"]
    return {key: value for key, value in env.items() if value != ""}


def _server_major(conn: psycopg.Connection) -> int:
    return int(conn.info.server_version) // 10000


def _binary(name: str, major: int) -> str:
    try:
        return client_binary(name, major)
    except EmbeddedServerError as exc:
        raise BackupError(f"{exc}; install the PostgreSQL {major} client programs") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _value(conn: psycopg.Connection, query: sql.SQL | sql.Composed, params: list | None = None):
    """The first column of a query's one row."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, "the query returned no row"
    return row[0]


def _tables(conn: psycopg.Connection) -> list[tuple[str, str, str | None, str | None]]:
    return list(conn.execute(TABLES_SQL).fetchall())


def _qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def _sample(conn: psycopg.Connection, schema: str, table: str, key: str, rows: int) -> dict[str, str]:
    """md5 of up to ``rows`` rows, spread over the table (random pages) when it is big, keyed by primary key."""
    estimate = _value(
        conn, sql.SQL("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = %s::regclass"), [f'"{schema}"."{table}"']
    )
    percent = min(100.0, 100.0 * rows * 20 / estimate) if estimate else 100.0
    query = sql.SQL("SELECT {key}::text, md5(t::text) FROM {table} AS t TABLESAMPLE SYSTEM (%s) LIMIT %s").format(
        key=sql.Identifier(key), table=_qualified(schema, table)
    )
    found: dict[str, str] = dict(conn.execute(query, [percent, rows]).fetchall())
    if len(found) < rows and percent < 100:  # an unlucky draw of pages: take the table's first rows instead
        query = sql.SQL("SELECT {key}::text, md5(t::text) FROM {table} AS t ORDER BY {key} LIMIT %s").format(
            key=sql.Identifier(key), table=_qualified(schema, table)
        )
        found = dict(conn.execute(query, [rows]).fetchall())
    return found


def _snapshot_contents(conn: psycopg.Connection, sample_rows: int) -> dict[str, dict]:
    tables: dict[str, dict] = {}
    for schema, table, key, key_type in _tables(conn):
        name = f"{schema}.{table}"
        count = _value(conn, sql.SQL("SELECT count(*) FROM {}").format(_qualified(schema, table)))
        entry: dict = {"rows": count}
        if key is not None and sample_rows:
            entry.update(key=key, key_type=key_type, sample=_sample(conn, schema, table, key, sample_rows))
        tables[name] = entry
    return tables


def backup_create(*, folder: Path | None = None, sample_rows: int = SAMPLE_ROWS) -> Backup:
    """Dump the configured database to ``folder`` (custom format) with its manifest; a consistent snapshot."""
    started = time.monotonic()
    folder = Path(folder or default_folder())
    folder.mkdir(parents=True, exist_ok=True)
    connection.ensure_connection()  # the embedded server fills in its socket folder on connecting
    params = connection.settings_dict
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dump = folder / f"{params['NAME']}-{stamp}{DUMP_SUFFIX}"
    with psycopg.connect(database_url(params), autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = _value(conn, sql.SQL("SELECT pg_export_snapshot()"))
        server_version = conn.info.server_version
        pg_dump = _binary("pg_dump", _server_major(conn))
        # pg_dump reads the exported snapshot while this transaction holds it open; the counts come from it too.
        dumping = subprocess.Popen(
            [pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={dump}"],
            env=_libpq_env(params),
            stderr=subprocess.PIPE,
            text=True,
        )
        conn.execute(SESSION_SETTINGS)
        tables = _snapshot_contents(conn, sample_rows)
        _, errors = dumping.communicate()
        conn.rollback()
    if dumping.returncode:
        dump.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {errors.strip()}")
    manifest = {
        "format": MANIFEST_FORMAT,
        "database": params["NAME"],
        "server_version_num": server_version,
        "created_at": stamp,
        "dump": dump.name,
        "dump_bytes": dump.stat().st_size,
        "dump_sha256": _sha256(dump),
        "tables": tables,
    }
    manifest_path = dump.with_suffix(DUMP_SUFFIX + MANIFEST_SUFFIX)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return Backup(
        dump=dump,
        manifest=manifest_path,
        size_bytes=manifest["dump_bytes"],
        tables=len(tables),
        rows=sum(entry["rows"] for entry in tables.values()),
        seconds=time.monotonic() - started,
    )


def latest_dump(folder: Path | None = None) -> Path:
    folder = Path(folder or default_folder())
    dumps = sorted(folder.glob(f"*{DUMP_SUFFIX}"), key=lambda path: path.stat().st_mtime)
    if not dumps:
        raise BackupError(NO_DUMP.format(folder=folder))
    return dumps[-1]


def _check_contents(report: DrillReport, conn: psycopg.Connection, expected: dict[str, dict]) -> None:
    conn.execute(SESSION_SETTINGS)
    restored = {f"{schema}.{table}": key for schema, table, key, _ in _tables(conn)}
    for name in sorted(set(expected) - set(restored)):
        report.check(False, f"table {name}: in the backup, missing from the restored database")
    for name in sorted(set(restored) - set(expected)):
        report.check(False, f"table {name}: in the restored database, not in the backup")
    bad_counts = 0
    for name in sorted(set(expected) & set(restored)):
        schema, table = name.split(".", 1)
        count = _value(conn, sql.SQL("SELECT count(*) FROM {}").format(_qualified(schema, table)))
        if count != expected[name]["rows"]:
            bad_counts += 1
            report.check(False, f"rows {name}: {expected[name]['rows']} in the backup, {count} restored")
    if not bad_counts:
        total = sum(entry["rows"] for entry in expected.values())
        report.check(True, f"row counts: all {len(expected)} tables match ({total} rows)")
    sampled = bad_samples = 0
    for name in sorted(set(expected) & set(restored)):
        entry = expected[name]
        if not entry.get("sample"):
            continue
        schema, table = name.split(".", 1)
        if not KEY_TYPE.fullmatch(entry["key_type"]):
            raise BackupError(f"the manifest names an unexpected key type for {name}: {entry['key_type']!r}")
        query = sql.SQL("SELECT {key}::text, md5(t::text) FROM {table} AS t WHERE {key} = ANY(%s::{type}[])").format(
            key=sql.Identifier(entry["key"]), table=_qualified(schema, table), type=sql.SQL(entry["key_type"])
        )
        found: dict[str, str] = dict(conn.execute(query, [list(entry["sample"])]).fetchall())
        differing = [key for key, digest in entry["sample"].items() if found.get(key) != digest]
        sampled += len(entry["sample"])
        if differing:
            bad_samples += 1
            report.check(
                False, f"checksums {name}: {len(differing)} of {len(entry['sample'])} sampled rows differ or are gone"
            )
    if not bad_samples:
        report.check(True, f"row checksums: all {sampled} sampled rows match")


def restore_drill(
    *,
    dump: Path | None = None,
    folder: Path | None = None,
    keep: bool = False,
    jobs: int = 1,
    after_restore: Callable[[str], None] | None = None,
) -> DrillReport:
    """Restore ``dump`` (default: the newest in ``folder``) into a new empty database on the configured server and
    check it against the dump's manifest (``jobs`` parallel pg_restore workers). The scratch database is dropped
    afterwards unless ``keep``.
    ``after_restore(url)`` runs between the restore and the checks (tests use it to damage the copy)."""
    started = time.monotonic()
    dump = Path(dump) if dump else latest_dump(folder)
    if not dump.exists():
        raise BackupError(f"no such dump: {dump}")
    manifest_path = dump.with_suffix(DUMP_SUFFIX + MANIFEST_SUFFIX)
    if not manifest_path.exists():
        raise BackupError(NO_MANIFEST.format(dump=dump, manifest=manifest_path.name))
    manifest = json.loads(manifest_path.read_text())
    report = DrillReport(dump=dump)
    digest = _sha256(dump)
    report.check(
        digest == manifest["dump_sha256"],
        "dump file: SHA-256 matches the manifest"
        if digest == manifest["dump_sha256"]
        else "dump file: SHA-256 differs from the manifest (the file changed since the backup)",
    )
    with scratch_database("drill", keep=keep) as url:
        scratch_name = url.rsplit("/", 1)[1]
        if keep:
            report.kept_database = scratch_name
        with psycopg.connect(url, autocommit=True) as conn:
            major = _server_major(conn)
        restore = subprocess.run(
            [
                _binary("pg_restore", major),
                "--no-owner",
                "--exit-on-error",
                f"--jobs={jobs}",
                f"--dbname={scratch_name}",
                str(dump),
            ],
            env=_libpq_env(connection.settings_dict, scratch_name),
            capture_output=True,
            text=True,
            check=False,
        )
        report.check(
            restore.returncode == 0,
            "restore: pg_restore finished without errors"
            if restore.returncode == 0
            else f"restore: pg_restore failed: {restore.stderr.strip()[-2000:]}",
        )
        if restore.returncode == 0:
            if after_restore is not None:
                after_restore(url)
            with psycopg.connect(url, autocommit=True) as conn:
                _check_contents(report, conn, manifest["tables"])
            # After the comparison: verify_migrations first backfills a ledger that lacks rows (sync_ledger).
            verified = run_manage(url, "verify_migrations", "--verbosity", "0")
            report.check(
                verified.returncode == 0,
                "migrations: verify_migrations passes"
                if verified.returncode == 0
                else f"migrations: verify_migrations failed: {(verified.stderr or verified.stdout).strip()}",
            )
    report.seconds = time.monotonic() - started
    return report
