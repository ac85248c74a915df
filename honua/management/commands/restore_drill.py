from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from honua.backup import BackupError, default_folder, restore_drill


class Command(BaseCommand):
    help = (
        "Prove a backup restores: restore a dump (the newest in the backup folder, or the one named) into a new, "
        "empty database on the configured server, then check the dump's SHA-256, verify_migrations, every table's "
        "row count and the sampled rows' checksums against the manifest written at backup time. Prints PASS or "
        "FAIL per check and exits 1 on any failure. The scratch database is dropped afterwards unless --keep."
    )

    def add_arguments(self, parser):
        parser.add_argument("dump", nargs="?", help="The dump to restore (default: the newest in --dir).")
        parser.add_argument(
            "--dir", default=None, help=f"Folder to take the newest dump from (default: {default_folder()})."
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            help="Parallel pg_restore workers (data and indexes of several tables at once); default 1.",
        )
        parser.add_argument(
            "--keep", action="store_true", help="Keep the restored database afterwards (its name is printed)."
        )

    def handle(self, *args, **options):
        if options["jobs"] < 1:
            raise CommandError("--jobs must be 1 or more", returncode=2)
        try:
            report = restore_drill(
                dump=Path(options["dump"]) if options["dump"] else None,
                folder=Path(options["dir"]) if options["dir"] else None,
                keep=options["keep"],
                jobs=options["jobs"],
            )
        except BackupError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(f"Restore drill of {report.dump}")
        for ok, text in report.checks:
            line = f"  {'PASS' if ok else 'FAIL'}  {text}"
            self.stdout.write(self.style.SUCCESS(line) if ok else self.style.ERROR(line))
        if report.kept_database:
            self.stdout.write(f"Kept the restored database {report.kept_database}.")
        if not report.passed:
            raise CommandError(
                f"restore drill FAILED ({len(report.failures())} check(s)) in {report.seconds:.1f} s", returncode=1
            )
        self.stdout.write(self.style.SUCCESS(f"Restore drill PASSED in {report.seconds:.1f} s."))
