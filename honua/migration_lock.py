"""The lock file of released migrations: the SHA-256 of every migration and SQL file, checked in the repository.

``migrations.lock`` (at the project root) has one line per released file, ``<sha256>  <path>``, the format of
``sha256sum`` (so ``sha256sum --check migrations.lock`` works too). Lines are only ever appended: a released file
is never edited, so its line never changes. ``check_lock`` names every locked file that changed or disappeared;
files not locked yet (new, unreleased work) are listed but are not an error. Unlike the ledger
(``honua/ledger.py``), which compares a live database with the files it applied, the lock needs no database: it
is what CI checks, since CI always starts from a fresh database.
"""

import dataclasses
import hashlib
from collections.abc import Iterable
from pathlib import Path

LOCK_NAME = "migrations.lock"
HEADER = (
    "# Released migrations and SQL files: SHA-256 and path. Append-only, never edit a line (nor the files).\n"
    "# Add new ones with `python manage.py lock_migrations`; `--check` (in `make lint`) names any that changed.\n"
)


@dataclasses.dataclass(frozen=True)
class LockProblem:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def migration_files(root: Path, app_dirs: Iterable[str]) -> list[str]:
    """Every migration (``<app>/migrations/NNNN_*.py``) and SQL file (``<app>/sql/NNNN_*.sql``), relative to root.

    ``<app>/sql/current/`` (the generated current-schema tree) is not a migration file and is left out.
    """
    found: list[Path] = []
    for app_dir in app_dirs:
        folder = root / app_dir
        found.extend(folder.glob("migrations/[0-9][0-9][0-9][0-9]_*.py"))
        found.extend(folder.glob("sql/[0-9][0-9][0-9][0-9]_*.sql"))
    return sorted(path.relative_to(root).as_posix() for path in found)


def read_lock(lock_path: Path) -> dict[str, str]:
    """Path -> SHA-256 from the lock file (empty when it does not exist)."""
    if not lock_path.exists():
        return {}
    locked: dict[str, str] = {}
    for number, line in enumerate(lock_path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"{lock_path.name} line {number} is not `<sha256>  <path>`: {line!r}")
        if path in locked:
            raise ValueError(f"{lock_path.name} line {number}: {path} is locked twice")
        locked[path] = digest
    return locked


def check_lock(root: Path, app_dirs: Iterable[str]) -> tuple[list[LockProblem], list[str]]:
    """Locked files that changed or disappeared, and the files not locked yet."""
    locked = read_lock(root / LOCK_NAME)
    on_disk = migration_files(root, app_dirs)
    problems = []
    for path, digest in locked.items():
        file = root / path
        if not file.exists():
            problems.append(LockProblem(path, "released, but the file is gone"))
        elif _digest(file) != digest:
            problems.append(LockProblem(path, "released, but changed since (its SHA-256 differs from the lock)"))
    unlocked = [path for path in on_disk if path not in locked]
    return problems, unlocked


def append_to_lock(root: Path, app_dirs: Iterable[str]) -> list[str]:
    """Append a line for every file not locked yet (existing lines are never rewritten). Returns the paths added."""
    lock_path = root / LOCK_NAME
    locked = read_lock(lock_path)
    added = [path for path in migration_files(root, app_dirs) if path not in locked]
    if not added:
        return []
    with lock_path.open("a") as lock:
        if not lock_path.stat().st_size:
            lock.write(HEADER)
        lock.writelines(f"{_digest(root / path)}  {path}\n" for path in added)
    return added
