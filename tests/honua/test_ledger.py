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
def test_edited_migration_is_named_and_reverting_it_passes(db_url, tmp_path):
    """Editing an applied migration makes verify_migrations exit 1 naming it; reverting makes it exit 0."""
    copy = tmp_path / "project"
    shutil.copytree(
        PROJECT_ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".honua", ".git", "__pycache__", "test-output")
    )
    env = {"DJANGO_SETTINGS_MODULE": "honua.settings.test", "DATABASE_URL": db_url}

    clean = run_manage("verify_migrations", env=env, cwd=copy)
    assert clean.returncode == 0, clean.stderr

    migration = copy / "honua" / "migrations" / "0001_initial.py"
    original = migration.read_bytes()
    migration.write_bytes(original + b"\n# an edit after release\n")
    edited = run_manage("verify_migrations", env=env, cwd=copy)
    assert edited.returncode == 1
    assert "honua.0001_initial" in edited.stderr
    assert "honua/migrations/0001_initial.py" in edited.stderr
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
