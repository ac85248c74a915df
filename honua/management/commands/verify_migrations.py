from django.core.management.base import BaseCommand, CommandError

from honua.ledger import LedgerMissing, sync_ledger, verify_ledger


class Command(BaseCommand):
    help = (
        "Check that every applied migration's files (the migration and the SQL files it runs) are unchanged "
        "since it was applied. Exits 1 naming each one that changed: never modify an applied migration; "
        "write a new one. Third-party apps' migrations are recorded but not verified: they change with their "
        "package's version."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default", help="Database alias to check (default: default).")

    def handle(self, *args, **options):
        sync_ledger(options["database"])  # backfill migrations applied before the ledger existed
        try:
            problems, pending = verify_ledger(options["database"])
        except LedgerMissing as exc:
            raise CommandError(str(exc), returncode=2) from None
        for name in pending:
            if options["verbosity"] >= 1:
                self.stdout.write(f"pending (not applied yet): {name}")
        if problems:
            for problem in problems:
                self.stderr.write(self.style.ERROR(f"modified: {problem}"))
            raise CommandError(
                f"{len(problems)} applied migration(s) changed; never modify an applied migration, write a new one",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS("All applied migrations match the ledger."))
