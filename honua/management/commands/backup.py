from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from honua.backup import SAMPLE_ROWS, BackupError, backup_create, default_folder


class Command(BaseCommand):
    help = (
        "Back up the configured database with pg_dump --format=custom (a pg_dump of the server's major version; "
        "the password goes through the environment, never the command line), from one consistent snapshot, and "
        "write a manifest beside it (<dump>.json: every table's row count and a sample of row checksums in that "
        "snapshot, and the dump's SHA-256) for manage.py restore_drill. See docs/operations.md, 'Backup and restore'."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dir", default=None, help=f"Folder for the dump and its manifest (default: {default_folder()})."
        )
        parser.add_argument(
            "--sample-rows",
            type=int,
            default=SAMPLE_ROWS,
            help=f"Rows per table whose checksums the manifest records (default {SAMPLE_ROWS}; 0: counts only).",
        )

    def handle(self, *args, **options):
        if options["sample_rows"] < 0:
            raise CommandError("--sample-rows must be 0 or more", returncode=2)
        try:
            backup = backup_create(
                folder=Path(options["dir"]) if options["dir"] else None, sample_rows=options["sample_rows"]
            )
        except BackupError as exc:
            raise CommandError(str(exc), returncode=1) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up {backup.tables} tables ({backup.rows} rows) to {backup.dump} "
                f"({_size(backup.size_bytes)}) in {backup.seconds:.1f} s; manifest {backup.manifest.name}"
            )
        )


def _size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
