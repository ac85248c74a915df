"""The migration ledger (schema_migrations) and `verify_migrations`."""

import shutil

import pytest
from django.core.management import call_command
from django.db.migrations.recorder import MigrationRecorder

from honua.models import SchemaMigration
from tests.conftest import PROJECT_ROOT, run_manage


@pytest.mark.django_db
def test_every_applied_migration_is_in_the_ledger():
    """Each applied migration has a ledger row with a SHA-256 checksum and its files."""
    applied = set(MigrationRecorder.Migration.objects.values_list("app", "name"))
    ledger = {(row.app, row.name): row for row in SchemaMigration.objects.all()}
    assert applied == set(ledger)
    row = ledger[("honua", "0001_initial")]
    assert len(row.checksum) == 64
    assert "honua/migrations/0001_initial.py" in row.files


@pytest.mark.django_db
def test_migrations_applied_by_migrate_record_their_duration():
    """Migrations applied through `migrate` record how long they took."""
    assert SchemaMigration.objects.filter(app="honua", duration_ms__isnull=False).exists()


@pytest.mark.django_db
def test_ledger_is_backfilled_for_migrations_applied_before_it():
    """Rows missing from the ledger (applied before it existed) are filled in by the next run."""
    SchemaMigration.objects.filter(app="auth").delete()
    call_command("verify_migrations", verbosity=0)
    backfilled = SchemaMigration.objects.filter(app="auth")
    assert backfilled.count() == MigrationRecorder.Migration.objects.filter(app="auth").count()
    assert all(row.duration_ms is None for row in backfilled)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("edited_file", "migration_name"),
    [
        ("honua/migrations/0001_initial.py", "honua.0001_initial"),
        ("builds/sql/0004_queue.sql", "builds.0004_queue"),
    ],
)
def test_edited_migration_is_named_and_reverting_it_passes(db_url, tmp_path, edited_file, migration_name):
    """Editing an applied migration or one of its SQL files makes verify_migrations exit 1 naming both; reverting
    makes it exit 0."""
    copy = tmp_path / "project"
    shutil.copytree(
        PROJECT_ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".honua", ".git", "__pycache__", "test-output")
    )
    env = {"DJANGO_SETTINGS_MODULE": "honua.settings.test", "DATABASE_URL": db_url}

    clean = run_manage("verify_migrations", env=env, cwd=copy)
    assert clean.returncode == 0, clean.stderr

    migration = copy / edited_file
    original = migration.read_bytes()
    comment = b"-- " if edited_file.endswith(".sql") else b"# "
    migration.write_bytes(original + b"\n" + comment + b"an edit after release\n")
    edited = run_manage("verify_migrations", env=env, cwd=copy)
    assert edited.returncode == 1
    assert f"modified: {migration_name}: changed since it was applied: {edited_file}" in edited.stderr
    assert "never modify an applied migration" in edited.stderr

    migration.write_bytes(original)
    reverted = run_manage("verify_migrations", env=env, cwd=copy)
    assert reverted.returncode == 0, reverted.stderr


@pytest.mark.django_db
def test_unapplied_migration_is_reported_as_pending(capsys):
    """An unapplied migration is listed as pending and is not an error."""
    from django.core.management import call_command as run

    MigrationRecorder.Migration.objects.filter(app="sessions", name="0001_initial").delete()
    run("verify_migrations", verbosity=1)
    assert "pending (not applied yet): sessions.0001_initial" in capsys.readouterr().out
    assert not SchemaMigration.objects.filter(app="sessions").exists()


@pytest.mark.django_db
def test_seed_verification_query_lists_migrations_in_the_order_applied():
    """The seed's `SELECT version, name, applied_at FROM schema_migrations ORDER BY version` runs as written and
    numbers the migrations 1..N in the order they were applied."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        rows = cursor.fetchall()
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
    assert [row[2] for row in rows] == sorted(row[2] for row in rows)


@pytest.mark.django_db
def test_migration_recorded_later_gets_the_next_version():
    """A migration recorded after the others gets the next version, and the numbers already given never change."""
    SchemaMigration.objects.filter(app="sessions").delete()
    before = dict(SchemaMigration.objects.values_list("id", "version"))
    call_command("verify_migrations", verbosity=0)
    row = SchemaMigration.objects.get(app="sessions")
    assert row.version == max(before.values()) + 1
    kept = dict(SchemaMigration.objects.exclude(app="sessions").values_list("id", "version"))
    assert all(before[key] == version for key, version in kept.items())
