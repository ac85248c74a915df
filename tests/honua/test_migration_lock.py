"""The lock file of released migrations (migrations.lock) and `lock_migrations`."""

import shutil

import pytest

from honua.management.commands.lock_migrations import project_app_dirs
from honua.migration_lock import LOCK_NAME, append_to_lock, check_lock, read_lock
from tests.conftest import PROJECT_ROOT, run_manage

IGNORE = shutil.ignore_patterns(".venv", ".honua", ".git", "__pycache__", "test-output", "node_modules")


def test_every_released_file_matches_the_lock():
    """The repository's released migrations and SQL files are byte for byte the ones locked."""
    problems, _ = check_lock(PROJECT_ROOT, project_app_dirs())
    assert [str(problem) for problem in problems] == []


def test_lock_covers_every_app_with_migrations():
    """Each project app's migrations are in the lock (the lock is not empty or partial by accident)."""
    locked_apps = {path.split("/")[0] for path in read_lock(PROJECT_ROOT / LOCK_NAME)}
    assert locked_apps == {"builds", "console", "honua", "intake", "licensing", "operations"}


def test_edited_released_sql_file_is_named_and_reverting_passes(tmp_path):
    """In a clone, editing a released SQL file makes `lock_migrations --check` exit 1 naming it; reverting passes."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, copy, ignore=IGNORE)
    path = "builds/sql/0004_queue.sql"
    edited = copy / path
    original = edited.read_bytes()
    edited.write_bytes(original + b"\n-- an edit after release\n")

    failed = run_manage("lock_migrations", "--check", cwd=copy)
    assert failed.returncode == 1
    assert f"modified: {path}: released, but changed since" in failed.stderr
    assert "never modify a released migration" in failed.stderr

    edited.write_bytes(original)
    passed = run_manage("lock_migrations", "--check", cwd=copy)
    assert passed.returncode == 0, passed.stderr


@pytest.mark.parametrize(
    "path",
    ["builds/sql/0004_queue.reverse.sql", "licensing/migrations/0001_initial.py", "intake/sql/0004_intake_views.sql"],
)
def test_any_edited_released_file_is_named(tmp_path, path):
    """A one-byte change to any released migration, SQL file or reverse SQL file is named."""
    app = path.split("/")[0]
    shutil.copytree(PROJECT_ROOT / app, tmp_path / app, ignore=IGNORE)
    shutil.copy(PROJECT_ROOT / LOCK_NAME, tmp_path / LOCK_NAME)
    edited = tmp_path / path
    edited.write_bytes(edited.read_bytes() + b"\n")
    problems, _ = check_lock(tmp_path, [app])
    named = [str(problem) for problem in problems if problem.path.startswith(f"{app}/")]
    assert named == [f"{path}: released, but changed since (its SHA-256 differs from the lock)"]


def test_removed_released_file_is_named(tmp_path):
    """A released file that disappears is named as gone."""
    shutil.copytree(PROJECT_ROOT / "intake", tmp_path / "intake", ignore=IGNORE)
    shutil.copy(PROJECT_ROOT / LOCK_NAME, tmp_path / LOCK_NAME)
    (tmp_path / "intake" / "sql" / "0003_expire_old_conversations.sql").unlink()
    problems, _ = check_lock(tmp_path, ["intake"])
    gone = [str(problem) for problem in problems if problem.path.startswith("intake/")]
    assert gone == ["intake/sql/0003_expire_old_conversations.sql: released, but the file is gone"]


def test_append_adds_new_files_and_never_rewrites_a_line(tmp_path):
    """Appending locks new files at the end and leaves every existing line byte for byte as it was."""
    app = tmp_path / "app"
    (app / "migrations").mkdir(parents=True)
    (app / "sql" / "current").mkdir(parents=True)
    (app / "migrations" / "0001_initial.py").write_text("# first\n")
    (app / "sql" / "0001_initial.sql").write_text("SELECT 1;\n")
    (app / "sql" / "current" / "f.sql").write_text("-- generated, not a migration\n")
    assert append_to_lock(tmp_path, ["app"]) == ["app/migrations/0001_initial.py", "app/sql/0001_initial.sql"]
    before = (tmp_path / LOCK_NAME).read_bytes()

    (app / "migrations" / "0002_next.py").write_text("# second\n")
    assert append_to_lock(tmp_path, ["app"]) == ["app/migrations/0002_next.py"]
    after = (tmp_path / LOCK_NAME).read_bytes()
    assert after.startswith(before)
    assert after[len(before) :].decode().endswith("  app/migrations/0002_next.py\n")
    assert append_to_lock(tmp_path, ["app"]) == []
    assert check_lock(tmp_path, ["app"]) == ([], [])


def test_unlocked_new_file_is_listed_not_an_error(tmp_path):
    """A new, unreleased migration is reported as not locked yet; the check still passes."""
    app = tmp_path / "app"
    (app / "migrations").mkdir(parents=True)
    (app / "migrations" / "0001_initial.py").write_text("# first\n")
    append_to_lock(tmp_path, ["app"])
    (app / "migrations" / "0002_new.py").write_text("# new\n")
    assert check_lock(tmp_path, ["app"]) == ([], ["app/migrations/0002_new.py"])
