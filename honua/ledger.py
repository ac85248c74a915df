"""The migration ledger: which migrations are applied, when, how long they took, and their files' checksums."""

import dataclasses
import hashlib
import inspect
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Max

from honua.sql_migrations import RunSQLFile


def _relative(path: Path, app_label: str) -> str:
    # Relative to the folder holding the app, so the key is the same wherever the code or venv lives.
    return str(path.resolve().relative_to(Path(apps.get_app_config(app_label).path).resolve().parent))


def is_project_migration(migration) -> bool:
    """Whether the migration belongs to this project (third-party migrations change with their package)."""
    return Path(inspect.getfile(type(migration))).resolve().is_relative_to(Path(settings.BASE_DIR).resolve())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def migration_files(migration) -> list[Path]:
    """The migration's own file and every SQL file it runs, in a stable order."""
    files = [Path(inspect.getfile(type(migration)))]
    for operation in migration.operations:
        if isinstance(operation, RunSQLFile):
            files.extend(operation.paths())
    return files


def migration_checksum(migration) -> tuple[str, dict[str, str]]:
    """SHA-256 over the files (names and contents), and each file's own SHA-256."""
    total = hashlib.sha256()
    files = {}
    for path in migration_files(migration):
        name = _relative(path, migration.app_label)
        files[name] = digest = _digest(path)
        total.update(f"{name}\0{digest}\n".encode())
    return total.hexdigest(), files


class LedgerMissing(Exception):
    """The ledger table has not been created (``migrate`` has not run)."""


def _is_project_app(app_label: str) -> bool:
    try:
        path = Path(apps.get_app_config(app_label).path).resolve()
    except LookupError:
        return False
    return path.is_relative_to(Path(settings.BASE_DIR).resolve())


def _ledger_has_version(connection) -> bool:
    from honua.models import SchemaMigration

    table = SchemaMigration._meta.db_table
    if table not in connection.introspection.table_names():
        return False
    with connection.cursor() as cursor:
        return "version" in {column.name for column in connection.introspection.get_table_description(cursor, table)}


@dataclasses.dataclass
class LedgerProblem:
    app: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.app}.{self.name}: {self.reason}"


def sync_ledger(using: str = "default", durations_ms: dict[tuple[str, str], int] | None = None) -> int:
    """Record every applied migration missing from the ledger and forget unapplied ones. Returns rows added.

    Idempotent: migrations applied before the ledger existed are backfilled (with no duration), and a run
    interrupted between applying a migration and recording it is completed by the next one.
    """
    from honua.models import SchemaMigration

    connection = connections[using]
    if not _ledger_has_version(connection):
        return 0  # no ledger yet, or one older than honua.0003 (that `migrate` is about to bring up to date)
    durations_ms = durations_ms or {}
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    applied = MigrationRecorder(connection).applied_migrations()
    recorded = set(SchemaMigration.objects.using(using).values_list("app", "name"))
    gone = recorded - set(applied)
    if gone:
        for app, name in gone:
            SchemaMigration.objects.using(using).filter(app=app, name=name).delete()
    rows: list[SchemaMigration] = []
    next_version = (SchemaMigration.objects.using(using).aggregate(last=Max("version"))["last"] or 0) + 1
    # In the order they were applied; a batch applied within one clock tick keeps django_migrations' order.
    for key, record in sorted(applied.items(), key=lambda item: (item[1].applied, item[1].pk)):
        if key in recorded or key not in loader.disk_migrations:
            continue
        checksum, files = migration_checksum(loader.disk_migrations[key])
        rows.append(
            SchemaMigration(
                version=next_version + len(rows),
                app=key[0],
                name=key[1],
                checksum=checksum,
                files=files,
                applied_at=record.applied,
                duration_ms=durations_ms.get(key),
            )
        )
    SchemaMigration.objects.using(using).bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def verify_ledger(using: str = "default") -> tuple[list[LedgerProblem], list[str]]:
    """Problems (applied project migrations whose files changed or vanished), and the pending migrations."""
    from honua.models import SchemaMigration

    connection = connections[using]
    if SchemaMigration._meta.db_table not in connection.introspection.table_names():
        raise LedgerMissing("the migration ledger does not exist yet; run `manage.py migrate` first")
    loader = MigrationLoader(connection, ignore_no_migrations=True, replace_migrations=False)
    problems: list[LedgerProblem] = []
    replaced_by = {}
    for key, migration in loader.disk_migrations.items():
        for replaced in migration.replaces or ():
            replaced_by[tuple(replaced)] = key
    # `version` is left out so that a ledger older than honua.0003 (not migrated yet) can be verified too.
    for entry in SchemaMigration.objects.using(using).order_by("app", "name").defer("version"):
        key = (entry.app, entry.name)
        on_disk = loader.disk_migrations.get(key)
        if on_disk is None:
            if key not in replaced_by and _is_project_app(entry.app):
                problems.append(LedgerProblem(entry.app, entry.name, "applied, but its file is gone"))
            continue
        if not is_project_migration(on_disk):
            continue
        checksum, files = migration_checksum(on_disk)
        if checksum != entry.checksum:
            changed = sorted(path for path in set(files) | set(entry.files) if files.get(path) != entry.files.get(path))
            problems.append(LedgerProblem(entry.app, entry.name, "changed since it was applied: " + ", ".join(changed)))
    graph = MigrationLoader(connection, ignore_no_migrations=True).graph  # squashes resolved
    applied = set(MigrationRecorder(connection).applied_migrations())
    pending = [f"{app}.{name}" for app, name in sorted(graph.nodes) if (app, name) not in applied]
    return problems, pending
