from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from honua.migration_lock import LOCK_NAME, append_to_lock, check_lock


def project_app_dirs() -> list[str]:
    """The project's own apps' folders, relative to the project root. Third-party apps are not locked, even when
    they are installed below the root (a virtualenv in ``.venv``): the project's apps are its top-level folders."""
    root = Path(settings.BASE_DIR).resolve()
    folders = (Path(config.path).resolve() for config in apps.get_app_configs())
    return sorted(folder.name for folder in folders if folder.parent == root)


class Command(BaseCommand):
    help = (
        f"Append the SHA-256 of every migration and SQL file not yet in {LOCK_NAME} (releasing them; existing "
        "lines are never rewritten), or with --check exit 1 naming each released file that changed or "
        "disappeared. Needs no database."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="Only check: exit 1 naming each locked file that changed or is gone; list files not locked yet.",
        )

    def handle(self, *args, **options):
        root = Path(settings.BASE_DIR).resolve()
        app_dirs = project_app_dirs()
        if not options["check"]:
            problems, _ = check_lock(root, app_dirs)
            if problems:
                self._report(problems)
            added = append_to_lock(root, app_dirs)
            for path in added:
                if options["verbosity"] >= 1:
                    self.stdout.write(f"locked {path}")
            self.stdout.write(self.style.SUCCESS(f"{len(added)} file(s) added to {LOCK_NAME}."))
            return
        problems, unlocked = check_lock(root, app_dirs)
        if options["verbosity"] >= 1:
            for path in unlocked:
                self.stdout.write(f"not locked yet (new): {path}")
        if problems:
            self._report(problems)
        self.stdout.write(self.style.SUCCESS(f"Every released migration and SQL file matches {LOCK_NAME}."))

    def _report(self, problems):
        for problem in problems:
            self.stderr.write(self.style.ERROR(f"modified: {problem}"))
        raise CommandError(
            f"{len(problems)} released migration file(s) changed; never modify a released migration or SQL file, "
            f"write a new migration (restore them with `git checkout -- <path>`)",
            returncode=1,
        )
