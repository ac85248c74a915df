from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from psycopg import sql


class Command(BaseCommand):
    help = (
        "Create the configured database if it does not exist yet (on DATABASE_URL's server, or the embedded "
        "one, which creates it by itself). Safe to run again."
    )

    def handle(self, *args, **options):
        name = connection.settings_dict["NAME"]
        with connection._nodb_cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone():
                if options["verbosity"] >= 2:
                    self.stdout.write(f"database {name!r} exists")
                return
            try:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string(cursor.connection))
            except DatabaseError as exc:
                raise CommandError(f"cannot create database {name!r}: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"created database {name!r}"))
