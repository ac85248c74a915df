"""The current-schema tree: the current definition of every SQL function, procedure, view and trigger, one file each.

Migrations say how the schema got here; ``<app>/sql/current/`` says what it is now. The tree is written from a
freshly migrated database (``python manage.py schema_tree``), never by hand, and a test fails when it and the
migrations disagree.

- ``<app>/sql/current/<name>.sql``: a function or procedure (every overload of the name, in one file) or a view,
  as PostgreSQL itself prints it (``pg_get_functiondef``, ``pg_get_viewdef``). The app is the one whose migration
  defined the object last (the file is named in the header); an object no migration's SQL names goes to ``honua``.
- ``<app>/sql/current/triggers/<table>.sql``: every trigger on the table (``pg_get_triggerdef``) and the trigger
  functions only those triggers use (django-pgtrigger's and django-pghistory's ``pgtrigger_*`` functions, declared
  on the model). The app is the one owning the table's model. A hand-written trigger function shared by several
  tables (``update_updated_at_column``) has its own ``<name>.sql`` like any function.

Left out as noise: django-pghistory's helper ``_pgh_attach_context``, installed in every project that uses it; it
belongs to that library, not to this schema. django-pgtrigger's ``_pgtrigger_should_ignore`` is in the tree: the
project replaces the library's version (operations/sql/0006_trigger_ignore_check.sql).
"""

import dataclasses
import inspect
import re
from collections import defaultdict
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db.migrations import Migration
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.special import RunSQL

from honua.sql_migrations import RunSQLFile

CURRENT_DIR = Path("sql") / "current"
FALLBACK_APP = "honua"
# Installed by the library in every database that uses it; not part of this project's schema.
LIBRARY_FUNCTIONS = frozenset({"_pgh_attach_context"})

# A statement that (re)defines an object: CREATE [OR REPLACE] ..., or ALTER FUNCTION/PROCEDURE/VIEW (ROWS, SET, ...).
_DEFINES = re.compile(
    r"\b(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE|VIEW|MATERIALIZED\s+VIEW|TABLE)"
    r"|ALTER\s+(?:FUNCTION|PROCEDURE|VIEW|MATERIALIZED\s+VIEW))\s+"
    r"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:public\.)?\"?(\w+)\"?",
    re.IGNORECASE,
)

_COMMENT = re.compile(r"--[^\n]*")

_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
       p.prorettype = 'trigger'::regtype
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""
_VIEWS = """
SELECT c.relname, c.relkind, pg_get_viewdef(c.oid, true)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1
"""
_TRIGGERS = """
SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid, true), p.proname
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE n.nspname = 'public' AND NOT t.tgisinternal
  AND t.tgparentid = 0  -- a partition's clone of its partitioned table's trigger is the parent's trigger
ORDER BY 1, 2
"""


@dataclasses.dataclass(frozen=True)
class Definer:
    app: str
    source: str  # the file that defined the object last, relative to the project root


def _relative(path: Path) -> str:
    return path.resolve().relative_to(Path(settings.BASE_DIR).resolve()).as_posix()


def migration_plan() -> list[Migration]:
    """Every migration on disk, in the order ``migrate`` applies them to an empty database."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    plan: list[Migration] = []
    seen: set[tuple[str, str]] = set()
    for leaf in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(leaf):
            if key not in seen:
                seen.add(key)
                plan.append(loader.graph.nodes[key])
    return plan


def last_definers() -> dict[str, Definer]:
    """Object name -> the app and file of the last migration (in migration order) whose SQL creates it."""
    definers: dict[str, Definer] = {}
    for migration in migration_plan():
        for operation in migration.operations:
            if not isinstance(operation, RunSQL) or not isinstance(operation.sql, str):
                continue
            if isinstance(operation, RunSQLFile):
                source = operation.paths()[0]
            else:
                source = Path(inspect.getfile(type(migration)))
            if not source.resolve().is_relative_to(Path(settings.BASE_DIR).resolve()):
                continue
            for name in _DEFINES.findall(_COMMENT.sub("", operation.sql)):
                definers[name.lower()] = Definer(migration.app_label, _relative(source))
    return definers


def _table_apps() -> dict[str, str]:
    return {model._meta.db_table: model._meta.app_label for model in apps.get_models(include_auto_created=True)}


def _project_apps() -> set[str]:
    root = Path(settings.BASE_DIR).resolve()
    return {config.label for config in apps.get_app_configs() if Path(config.path).resolve().is_relative_to(root)}


def _header(name: str, kind: str, origin: str) -> str:
    return (
        f"-- {name} ({kind}): its current definition, as PostgreSQL prints it.\n"
        f"-- Generated by `python manage.py schema_tree` from a freshly migrated database; do not edit.\n"
        f"-- {origin}\n"
    )


def _tidy(text: str) -> str:
    """Trailing spaces removed, each statement ending in `;` and the file in one newline."""
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return text if text.endswith(";") else text + ";"


def render_tree(cursor) -> dict[str, str]:
    """Every file of the tree (path relative to the project root -> content), from the database of ``cursor``."""
    definers = last_definers()
    table_apps = _table_apps()
    project_apps = _project_apps()

    def app_of(definer: Definer | None) -> str:
        return definer.app if definer and definer.app in project_apps else FALLBACK_APP

    def folder(app: str) -> str:
        return (Path(_relative(Path(apps.get_app_config(app).path))) / CURRENT_DIR).as_posix()

    cursor.execute(_FUNCTIONS)
    functions = cursor.fetchall()
    cursor.execute(_VIEWS)
    views = cursor.fetchall()
    cursor.execute(_TRIGGERS)
    triggers = cursor.fetchall()

    trigger_tables: dict[str, set[str]] = defaultdict(set)
    for table, _, _, function in triggers:
        trigger_tables[function].add(table)
    # A trigger function that serves the triggers of one table only lives with that table's triggers.
    private_trigger_functions = {
        name: next(iter(tables)) for name, tables in trigger_tables.items() if len(tables) == 1 and name not in definers
    }

    files: dict[str, str] = {}
    overloads: dict[str, list[str]] = defaultdict(list)
    table_functions: dict[str, list[str]] = defaultdict(list)
    for name, _, definition, _ in functions:
        if name in LIBRARY_FUNCTIONS:
            continue
        if name in private_trigger_functions:
            table_functions[private_trigger_functions[name]].append(_tidy(definition))
        else:
            overloads[name].append(_tidy(definition))
    for name, definitions in overloads.items():
        definer = definers.get(name)
        kind = "function" if len(definitions) == 1 else f"function, {len(definitions)} overloads"
        if any("CREATE OR REPLACE PROCEDURE" in d for d in definitions):
            kind = "procedure"
        origin = f"Last defined in {definer.source}." if definer else "Defined by no migration's SQL file."
        files[f"{folder(app_of(definer))}/{name}.sql"] = _header(name, kind, origin) + "\n" + "\n\n".join(definitions)
    for name, relkind, definition in views:
        definer = definers.get(name)
        kind = "materialized view" if relkind == "m" else "view"
        create = "CREATE MATERIALIZED VIEW" if relkind == "m" else "CREATE OR REPLACE VIEW"
        origin = f"Last defined in {definer.source}." if definer else "Defined by no migration's SQL file."
        body = f"{create} public.{name} AS\n{definition}"
        files[f"{folder(app_of(definer))}/{name}.sql"] = _header(name, kind, origin) + "\n" + _tidy(body)
    by_table: dict[str, list[str]] = defaultdict(list)
    for table, _, definition, _ in triggers:
        by_table[table].append(_tidy(definition))
    for table, definitions in by_table.items():
        app = table_apps.get(table)
        if app not in project_apps:
            app = app_of(definers.get(table))
        origin = "Triggers declared on the model (Meta.triggers) or in the migrations' SQL files."
        parts = [*table_functions.get(table, []), *definitions]
        header = _header(table, f"triggers on table {table}", origin)
        files[f"{folder(app)}/triggers/{table}.sql"] = header + "\n" + "\n\n".join(parts)
    return {path: content + "\n" for path, content in sorted(files.items())}


def tree_on_disk(root: Path) -> dict[str, str]:
    """The committed tree: every file under each project app's ``sql/current/``."""
    files = {}
    for app in sorted(_project_apps()):
        folder = Path(apps.get_app_config(app).path) / CURRENT_DIR
        for path in sorted(folder.rglob("*.sql")):
            files[path.resolve().relative_to(root.resolve()).as_posix()] = path.read_text()
    return files


def compare_tree(expected: dict[str, str], on_disk: dict[str, str]) -> list[str]:
    """Human-readable differences: files missing, stale, or not matching the database."""
    problems = []
    for path in sorted(set(expected) | set(on_disk)):
        if path not in on_disk:
            problems.append(f"{path}: missing (the database has this object)")
        elif path not in expected:
            problems.append(f"{path}: stale (the database has no such object any more)")
        elif expected[path] != on_disk[path]:
            problems.append(f"{path}: differs from the database's definition")
    return problems


def write_tree(root: Path, files: dict[str, str], current: dict[str, str]) -> tuple[list[str], list[str]]:
    """Write the tree over ``current`` (the files on disk), deleting stale ones; returns (written, deleted)."""
    written = []
    for path, content in files.items():
        if current.get(path) != content:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            written.append(path)
    deleted = []
    for path in current:
        if path not in files:
            (root / path).unlink()
            deleted.append(path)
    return written, deleted
