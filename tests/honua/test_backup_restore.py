"""Backups and the restore drill on demo data: a dump restores into a new database that matches the source, and
a damaged copy or dump fails the drill, naming what differs (docs/operations.md, "Backup and restore")."""

import json
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from honua import backup
from honua.ledger import sync_ledger

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_backup(tmp_path):
    """The demo data, committed, backed up into a fresh folder."""
    _seed()
    return backup.backup_create(folder=tmp_path)


def _seed() -> None:
    """Demo data, and the migration ledger filled (a transactional test's flush empties every table)."""
    call_command("seed_demo", verbosity=0)
    sync_ledger("default")


def _scratch_databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{connection.settings_dict['NAME']}_drill_%"]
        )
        return {name for (name,) in cursor.fetchall()}


def test_backup_then_drill_passes_and_leaves_no_database(tmp_path):
    """manage.py backup writes a dump and a manifest with every table's count; restore_drill restores the newest
    into a new database, reports PASS for every check, and drops that database."""
    call_command("seed_demo", verbosity=0)
    out = StringIO()
    call_command("backup", "--dir", str(tmp_path), stdout=out)
    (dump,) = tmp_path.glob("*.dump")
    assert str(dump) in out.getvalue() and "KiB" in out.getvalue()
    manifest = json.loads(dump.with_suffix(".dump.json").read_text())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers")
        (customers,) = cursor.fetchone()
    assert manifest["tables"]["public.customers"]["rows"] == customers > 0
    assert manifest["tables"]["public.customers"]["sample"]
    assert {"public.build_queue", "public.conversation_messages", "public.schema_migrations"} <= set(manifest["tables"])

    out = StringIO()
    call_command("restore_drill", "--dir", str(tmp_path), stdout=out)
    report = out.getvalue()
    assert "FAIL" not in report
    for check in ("SHA-256 matches", "pg_restore finished", "verify_migrations passes", "row counts", "checksums"):
        assert check in report
    assert "Restore drill PASSED" in report
    assert _scratch_databases() == set()


def test_a_damaged_copy_or_dump_fails_the_drill_naming_the_table(demo_backup):
    """A row missing from the restored copy, a changed sampled row and a dump changed since the backup each fail
    the drill, and the report names the table and the file."""
    tables = json.loads(demo_backup.manifest.read_text())["tables"]
    changed_customer = next(iter(tables["public.customers"]["sample"]))
    sampled_events = [int(key) for key in tables["public.build_events"]["sample"]]

    def damage(url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # no trigger writes history rows elsewhere
            conn.execute(
                "DELETE FROM build_events WHERE id = (SELECT min(id) FROM build_events WHERE id <> ALL(%s))",
                [sampled_events],
            )
            conn.execute("UPDATE customers SET contact_name = contact_name || '!' WHERE id = %s", [changed_customer])

    report = backup.restore_drill(dump=demo_backup.dump, after_restore=damage)
    assert not report.passed
    failures = report.failures()
    assert any(text.startswith("rows public.build_events:") for text in failures), failures
    assert any(text.startswith("checksums public.customers: 1 of") for text in failures), failures
    assert len(failures) == 2, failures

    with open(demo_backup.dump, "ab") as dump:
        dump.write(b"\0")  # pg_restore ignores trailing bytes; only the checksum notices
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("restore_drill", str(demo_backup.dump), stdout=out)
    assert failed.value.returncode == 1
    assert "FAIL  dump file: SHA-256 differs" in out.getvalue()


def test_client_programs_must_match_the_servers_major_version():
    """No pg_dump of the server's major version is a clear error, not a dump made by the wrong version."""
    with pytest.raises(backup.BackupError, match=r"no pg_dump of PostgreSQL 99 .*install the PostgreSQL 99 client"):
        backup._binary("pg_dump", 99)


def test_the_password_goes_through_the_environment():
    """The client programs' environment carries the connection, the password in PGPASSWORD (argv names none)."""
    env = backup._libpq_env({"HOST": "db", "PORT": 5432, "USER": "honua", "PASSWORD": "s3cret", "NAME": "honua"})
    assert env["PGPASSWORD"] == "s3cret"
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == ("db", "5432", "honua", "honua")


def test_a_drill_without_a_backup_says_so(tmp_path):
    """With no dump in the folder the drill stops with a clear message and exit code 2."""
    with pytest.raises(CommandError, match="no backup in") as failed:
        call_command("restore_drill", "--dir", str(tmp_path), stdout=StringIO())
    assert failed.value.returncode == 2
