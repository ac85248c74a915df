"""The psql-only deployment: `export_sql` writes plain SQL files, scripts/apply-migrations.sh applies them."""

import os
import re
import subprocess

import pytest
from django.core.management import call_command
from django.db import connection

from honua.embedded_pg import client_binary
from honua.scratch_db import run_manage, scratch_database
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
SCRIPT = PROJECT_ROOT / "scripts" / "apply-migrations.sh"
ROLE_DATA = (
    "SELECT g.name, ct.app_label, ct.model, p.codename FROM auth_group_permissions gp "
    "JOIN auth_group g ON g.id = gp.group_id JOIN auth_permission p ON p.id = gp.permission_id "
    "JOIN django_content_type ct ON ct.id = p.content_type_id ORDER BY 1, 2, 3, 4"
)


def _server_major() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0]) // 10000


def _apply(directory, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "PSQL": client_binary("psql", _server_major())}
    return subprocess.run(["bash", str(SCRIPT), str(directory)], env=env, capture_output=True, text=True, timeout=300)


def _schema(url: str) -> str:
    dump = subprocess.run(
        [client_binary("pg_dump", _server_major()), "--schema-only", "--no-owner", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.sub(r"^\\(un)?restrict .*$", "", dump, flags=re.MULTILINE)  # a random key per dump (pg_dump 17.6+)


def _query(url: str, query: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, django_db_setup, django_db_blocker):
    out = tmp_path_factory.mktemp("export")
    with django_db_blocker.unblock():
        call_command("export_sql", str(out), verbosity=0)
    return out


def test_export_applied_with_psql_equals_a_django_migrated_database(exported):
    """The exported files applied to an empty database with psql give the schema `migrate` gives (pg_dump
    --schema-only identical), the same roles, a ledger verify_migrations accepts, and `migrate` has nothing to do."""
    names = sorted(path.name for path in exported.glob("*.sql"))
    assert names[0] == "001_honua_0001_initial.sql"
    assert re.fullmatch(r"\d{3}_roles_and_permissions\.sql", names[-1])
    with scratch_database("psql") as by_psql, scratch_database("django") as by_django:
        applied = _apply(exported, by_psql)
        assert applied.returncode == 0, applied.stderr
        assert f"applied {len(names)} file(s), skipped 0" in applied.stdout
        migrated = run_manage(by_django, "migrate", "--no-input", "--verbosity", "0")
        assert migrated.returncode == 0, migrated.stderr

        assert _schema(by_psql) == _schema(by_django)
        assert _query(by_psql, ROLE_DATA) == _query(by_django, ROLE_DATA)
        ledger = _query(by_psql, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        assert [row[0] for row in ledger] == list(range(1, len(names)))

        after = run_manage(by_psql, "migrate", "--no-input")
        assert after.returncode == 0, after.stderr
        assert "No migrations to apply." in after.stdout
        verified = run_manage(by_psql, "verify_migrations")
        assert verified.returncode == 0, verified.stderr


def test_running_again_skips_what_the_ledger_holds(exported, tmp_path):
    """A second run applies only what is new: migrations already in the ledger are skipped, and a failing file
    stops the run, names itself and changes nothing."""
    with scratch_database("psql") as url:
        first_three = tmp_path / "first"
        first_three.mkdir()
        for path in sorted(exported.glob("*.sql"))[:3]:
            (first_three / path.name).write_bytes(path.read_bytes())
        assert _apply(first_three, url).returncode == 0
        assert [row[0] for row in _query(url, "SELECT name FROM schema_migrations ORDER BY version")] == [
            "0001_initial",
            "0002_maintenance_runs",
            "0003_ledger_version",
        ]

        broken = tmp_path / "broken"
        broken.mkdir()
        for path in sorted(exported.glob("*.sql"))[:5]:
            (broken / path.name).write_bytes(path.read_bytes())
        fourth = sorted(broken.glob("*.sql"))[3]
        fourth.write_text(fourth.read_text() + "\nSELECT 1 / 0;\n")
        failed = _apply(broken, url)
        assert failed.returncode == 1
        assert f"{fourth.name} failed; nothing of it was applied" in failed.stderr
        assert _query(url, "SELECT count(*) FROM schema_migrations") == [(3,)]

        fourth.write_bytes((exported / fourth.name).read_bytes())
        rest = _apply(broken, url)
        assert rest.returncode == 0, rest.stderr
        assert rest.stdout.splitlines()[0] == f"applying {fourth.name}"
        assert "applied 2 file(s), skipped 3 already applied" in rest.stdout
        assert _query(url, "SELECT count(*) FROM schema_migrations") == [(5,)]
