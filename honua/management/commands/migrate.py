import time

from django.core.management.commands import migrate

from honua.ledger import sync_ledger


class Command(migrate.Command):
    """Django's ``migrate``, which also keeps the migration ledger (``schema_migrations``) up to date."""

    help = migrate.Command.help + " Records each applied migration, its duration and checksum in schema_migrations."

    def handle(self, *args, **options):
        self._started: dict[tuple[str, str], float] = {}
        self._durations_ms: dict[tuple[str, str], int] = {}
        super().handle(*args, **options)
        added = sync_ledger(options["database"], self._durations_ms)
        if added and options["verbosity"] >= 2:
            self.stdout.write(f"  Recorded {added} migration(s) in schema_migrations.")

    def migration_progress_callback(self, action, migration=None, fake=False):
        if action == "apply_start":
            self._started[(migration.app_label, migration.name)] = time.monotonic()
        elif action == "apply_success" and not fake:
            key = (migration.app_label, migration.name)
            self._durations_ms[key] = round((time.monotonic() - self._started.pop(key)) * 1000)
        super().migration_progress_callback(action, migration, fake)
