from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from honua import embedded_pg
from honua.database import EMBEDDED_DATABASE_NAME, EMBEDDED_ENGINE


class Command(BaseCommand):
    help = "Show, start or stop the project's embedded PostgreSQL (used when DATABASE_URL is not set)."

    def add_arguments(self, parser):
        parser.add_argument(
            "action",
            choices=["status", "start", "stop", "url"],
            help="status: whether it runs and where; start: start it (idempotent); stop: fast shutdown; "
            "url: print a libpq connection string for psql.",
        )

    def handle(self, *args, action, **options):
        database = settings.DATABASES["default"]
        if database["ENGINE"] != EMBEDDED_ENGINE:
            where = f"{database.get('HOST') or 'local socket'}:{database.get('PORT') or 5432}/{database['NAME']}"
            if action in {"start", "stop"}:
                raise CommandError(f"DATABASE_URL is set ({where}); there is no embedded server to {action}")
            self.stdout.write(f"external PostgreSQL from DATABASE_URL: {where}")
            return
        data_dir = Path(database["PGDATA"])
        if action == "start":
            state = embedded_pg.ensure_running(data_dir, EMBEDDED_DATABASE_NAME)
            self.stdout.write(self.style.SUCCESS(f"running (pid {state.pid}) in {data_dir}"))
        elif action == "stop":
            if embedded_pg.stop(data_dir):
                self.stdout.write(self.style.SUCCESS("stopped"))
            else:
                self.stdout.write("not running")
        elif action == "url":
            state = embedded_pg.ensure_running(data_dir, EMBEDDED_DATABASE_NAME)
            self.stdout.write(f"{state.dsn} dbname={EMBEDDED_DATABASE_NAME}")
        else:
            state = embedded_pg.status(data_dir)
            if state.running:
                self.stdout.write(
                    f"running: PostgreSQL {state.version}, pid {state.pid}, data {data_dir}, socket {state.socket_dir}"
                )
            elif state.version:
                self.stdout.write(f"stopped: PostgreSQL {state.version}, data {data_dir}")
            else:
                self.stdout.write(f"not initialised yet: data {data_dir} (starts on first use)")
