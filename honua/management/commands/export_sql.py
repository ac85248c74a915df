from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from honua.management.commands import migrate
from honua.scratch_db import run_manage, scratch_database
from honua.sql_export import (
    ExportedMigration,
    Recorder,
    ledger_insert,
    ledger_ready,
    permissions_sql,
    recorder_insert,
    write_export,
)

LEDGER_APP = "honua"
# The ledger's own migrations (schema_migrations and its version): applied first. Later honua migrations may
# depend on other apps' (honua.0004 alters a builds function) and come in the common order.
LEDGER_MIGRATION = "0003_ledger_version"


class _RecordingMigrate(migrate.Command):
    """``migrate`` that tells the recorder which migration each statement belongs to."""

    def __init__(self, recorder: Recorder, pending_ledger: list):
        super().__init__()
        self.recorder = recorder
        self.pending_ledger = pending_ledger

    def migration_progress_callback(self, action, migration=None, fake=False):
        if action == "apply_start":
            self.recorder.started = True
            self.recorder.current = ExportedMigration(migration.app_label, migration.name, migration.atomic)
        elif action == "apply_success":
            exported = self.recorder.current
            assert exported is not None, "apply_success without apply_start"
            self.recorder.current = None
            exported.statements.append(recorder_insert(migration))
            self.pending_ledger.append(ledger_insert(migration))
            if ledger_ready():
                exported.ledger_rows.extend(self.pending_ledger)
                self.pending_ledger.clear()
            self.recorder.migrations.append(exported)
        super().migration_progress_callback(action, migration, fake)


class Command(BaseCommand):
    help = (
        "Export the whole schema as plain SQL files, one per migration in the order applied (001_<app>_<name>.sql, "
        "...), plus a last file with the content types, permissions and roles; apply them with "
        "scripts/apply-migrations.sh (psql only). The statements are recorded while migrating an empty scratch "
        "database on the configured server, which is dropped afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument("out_dir", help="Folder for the files (earlier NNN_*.sql files there are replaced).")
        parser.add_argument(
            "--from-empty-database",
            action="store_true",
            help="Internal: migrate the configured database, which must be empty, and record from it.",
        )

    def handle(self, *args, **options):
        out_dir = Path(options["out_dir"]).resolve()
        if not options["from_empty_database"]:
            with scratch_database("export") as url:
                child = run_manage(url, "export_sql", str(out_dir), "--from-empty-database", "--verbosity", "0")
            if child.returncode:
                raise CommandError(f"the export failed:\n{child.stderr.strip()}", returncode=child.returncode)
            files = sorted(out_dir.glob("[0-9][0-9][0-9]_*.sql"))
            self.stdout.write(self.style.SUCCESS(f"Wrote {len(files)} SQL files to {out_dir}."))
            return
        if connection.introspection.table_names():
            raise CommandError(f"database {connection.settings_dict['NAME']!r} is not empty", returncode=2)
        recorder = Recorder()
        pending_ledger: list[str] = []
        with connection.execute_wrapper(recorder):
            # The ledger's app first, so that every later file can record itself in schema_migrations.
            call_command(
                _RecordingMigrate(recorder, pending_ledger),
                LEDGER_APP,
                LEDGER_MIGRATION,
                verbosity=0,
                interactive=False,
            )
            call_command(_RecordingMigrate(recorder, pending_ledger), verbosity=0, interactive=False)
        if pending_ledger:
            raise CommandError("the ledger (schema_migrations with its version) was never created", returncode=2)
        names = write_export(out_dir, recorder, permissions_sql())
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.SUCCESS(f"Wrote {len(names)} SQL files to {out_dir} ({settings.BASE_DIR})."))
