"""The schema as plain SQL files, for deployments with ``psql`` only (``scripts/apply-migrations.sh``).

The files are what ``migrate`` itself runs: the export migrates an empty scratch database with Django and records
every statement each migration executes (DDL, the SQL files, django-pgtrigger's triggers, and the data that
``RunPython`` migrations write, such as the ``operators``/``admins`` roles), one file per migration, numbered in
the order applied like the seed's (``001_...sql``). Each file also records its migration in ``django_migrations``
(so ``migrate`` afterwards has nothing to do) and in the ledger (``schema_migrations``, with the checksum
``verify_migrations`` expects). A last file brings every content type, permission and the roles' permissions up to
date as ``migrate``'s ``post_migrate`` does; it is idempotent and runs every time.

Read-only statements (introspection, the ORM's look-ups) and savepoints are left out: they change nothing.
"""

import dataclasses
import json
import re
from pathlib import Path

from django.db import connection
from psycopg import ClientCursor, sql

from honua.ledger import migration_checksum

MIGRATION_HEADER = "-- honua-migration: "
ATOMIC_HEADER = "-- honua-atomic: "
_READ_ONLY = re.compile(r"^\s*(SELECT|SAVEPOINT|RELEASE SAVEPOINT|SHOW)\b", re.IGNORECASE)
_RECORDER = re.compile(r'^\s*INSERT INTO "django_migrations"', re.IGNORECASE)


@dataclasses.dataclass
class ExportedMigration:
    app: str
    name: str
    atomic: bool
    statements: list[str] = dataclasses.field(default_factory=list)
    ledger_rows: list[str] = dataclasses.field(default_factory=list)  # rows this file records in schema_migrations


@dataclasses.dataclass
class Recorder:
    """An execute wrapper that keeps, per migration, the statements that change something."""

    prelude: list[str] = dataclasses.field(default_factory=list)
    migrations: list[ExportedMigration] = dataclasses.field(default_factory=list)
    current: ExportedMigration | None = None
    started: bool = False
    rollbacks: set[int] = dataclasses.field(default_factory=set)

    def __call__(self, execute, statement, params, many, context):
        result = execute(statement, params, many, context)
        if self.current is None and self.started:
            return result  # pre/post_migrate signals and the ledger's own sync: not migrations
        rendered = [_render(statement, one) for one in params] if many else [_render(statement, params)]
        for text in rendered:
            if "ROLLBACK TO SAVEPOINT" in text.upper() and self.current is not None:
                self.rollbacks.add(id(self.current))
            if _RECORDER.match(text) or _READ_ONLY.match(text):
                continue
            (self.current.statements if self.current is not None else self.prelude).append(text.strip())
        return result


def _render(statement: str, params) -> str:
    if params is None:
        return statement
    return ClientCursor(connection.connection).mogrify(statement, params)


def _literal(value) -> str:
    return sql.Literal(value).as_string(connection.connection)


def ledger_insert(migration) -> str:
    """The ledger row of a migration applied by the export's files: the next version, its checksum, now()."""
    checksum, files = migration_checksum(migration)
    values = ", ".join(
        _literal(value) for value in (migration.app_label, migration.name, checksum, json.dumps(files, sort_keys=True))
    )
    return (
        "INSERT INTO schema_migrations (version, app, name, checksum, files, applied_at, duration_ms, recorded_at)\n"
        f"SELECT coalesce(max(version), 0) + 1, {values}, now(), NULL, now() FROM schema_migrations;"
    )


def recorder_insert(migration) -> str:
    return (
        f"INSERT INTO django_migrations (app, name, applied) "
        f"VALUES ({_literal(migration.app_label)}, {_literal(migration.name)}, now());"
    )


def ledger_ready() -> bool:
    """Whether the ledger (with its ``version``) exists in the database being migrated."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'schema_migrations' AND column_name = 'version'"
        )
        return cursor.fetchone() is not None


def permissions_sql() -> str:
    """Content types, permissions and the roles' permissions as they are now, written idempotently."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT app_label, model FROM django_content_type ORDER BY 1, 2")
        content_types = cursor.fetchall()
        cursor.execute(
            "SELECT ct.app_label, ct.model, p.codename, p.name FROM auth_permission p "
            "JOIN django_content_type ct ON ct.id = p.content_type_id ORDER BY 1, 2, 3"
        )
        permissions = cursor.fetchall()
        cursor.execute("SELECT name FROM auth_group ORDER BY 1")
        groups = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT g.name, ct.app_label, ct.model, p.codename FROM auth_group_permissions gp "
            "JOIN auth_group g ON g.id = gp.group_id JOIN auth_permission p ON p.id = gp.permission_id "
            "JOIN django_content_type ct ON ct.id = p.content_type_id ORDER BY 1, 2, 3, 4"
        )
        grants = cursor.fetchall()

    def rows(values) -> str:
        return ",\n".join("    (" + ", ".join(_literal(value) for value in row) + ")" for row in values)

    parts = [
        "-- What `migrate` keeps current after every run (post_migrate): every model's content type and",
        "-- permissions, and the permissions of the operators and admins roles (console/roles.py). Idempotent.",
        "",
        f"INSERT INTO django_content_type (app_label, model) VALUES\n{rows(content_types)}\nON CONFLICT DO NOTHING;",
        "",
        "INSERT INTO auth_permission (name, content_type_id, codename)\n"
        "SELECT v.name, ct.id, v.codename\n"
        f"FROM (VALUES\n{rows(permissions)}\n) AS v (app_label, model, codename, name)\n"
        "JOIN django_content_type ct ON ct.app_label = v.app_label AND ct.model = v.model\n"
        "ON CONFLICT (content_type_id, codename) DO UPDATE SET name = excluded.name;",
        "",
    ]
    if groups:
        parts += [
            f"INSERT INTO auth_group (name) VALUES\n{rows([(group,) for group in groups])}\nON CONFLICT DO NOTHING;",
            "",
            "CREATE TEMPORARY TABLE honua_role_grants (group_name text, app_label text, model text, codename text)"
            " ON COMMIT DROP;",
            f"INSERT INTO honua_role_grants VALUES\n{rows(grants)};" if grants else "",
            "DELETE FROM auth_group_permissions gp USING auth_group g, auth_permission p, django_content_type ct\n"
            "WHERE g.id = gp.group_id AND p.id = gp.permission_id AND ct.id = p.content_type_id\n"
            f"  AND g.name IN ({', '.join(_literal(group) for group in groups)})\n"
            "  AND NOT EXISTS (SELECT 1 FROM honua_role_grants r WHERE r.group_name = g.name\n"
            "                  AND r.app_label = ct.app_label AND r.model = ct.model AND r.codename = p.codename);",
            "INSERT INTO auth_group_permissions (group_id, permission_id)\n"
            "SELECT g.id, p.id FROM honua_role_grants r\n"
            "JOIN auth_group g ON g.name = r.group_name\n"
            "JOIN django_content_type ct ON ct.app_label = r.app_label AND ct.model = r.model\n"
            "JOIN auth_permission p ON p.content_type_id = ct.id AND p.codename = r.codename\n"
            "ON CONFLICT DO NOTHING;",
        ]
    return "\n".join(parts).rstrip() + "\n"


def _terminated(statement: str) -> str:
    statement = statement.rstrip()
    if statement.endswith(";"):
        return statement
    return statement + ("\n;" if "--" in statement.splitlines()[-1] else ";")


def _file_name(number: int, slug: str) -> str:
    return f"{number:03d}_{slug}.sql"


def write_export(out_dir: Path, recorder: Recorder, permissions: str) -> list[str]:
    """Write the files (replacing an earlier export in ``out_dir``); returns their names in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("[0-9][0-9][0-9]_*.sql"):
        old.unlink()
    names = []
    for number, exported in enumerate(recorder.migrations, start=1):
        label = f"{exported.app}.{exported.name}"
        body = [
            f"-- Migration {label}, exported by `python manage.py export_sql`; apply with scripts/apply-migrations.sh.",
            f"{MIGRATION_HEADER}{label}",
            f"{ATOMIC_HEADER}{'true' if exported.atomic else 'false'}",
            "",
        ]
        if number == 1:
            body += [*(f"{statement};" for statement in recorder.prelude), ""]
        body += [_terminated(statement) for statement in exported.statements]
        body += ["", *exported.ledger_rows]
        name = _file_name(number, f"{exported.app}_{exported.name}")
        (out_dir / name).write_text("\n".join(body).rstrip() + "\n")
        names.append(name)
    name = _file_name(len(recorder.migrations) + 1, "roles_and_permissions")
    (out_dir / name).write_text(permissions)
    names.append(name)
    return names
