import pghistory
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from honua import crypto
from licensing.keys import ENCRYPTED_COLUMNS

# pg_try_advisory_lock key: two runs must not overlap (each would re-read the other's batches).
ADVISORY_LOCK_KEY = 0x484F4E55415245  # "HONUARE"
BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret (license keys, registry secrets) under the newest key of HONUA_ENCRYPTION_KEYS, "
        "in batches, each in its own transaction. Only rows under an older key are touched, so an interrupted run "
        "resumes where it stopped and a second run changes nothing. Remove an old key from the ring only after "
        "this reports 0 rows left."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Rows re-encrypted per transaction (default 500)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count the rows under an older key; change nothing."
        )

    def handle(self, *args, batch_size, dry_run, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1", returncode=2)
        self.verbosity = options["verbosity"]
        ring = crypto.key_ring()
        prefix = f"{crypto.FORMAT_VERSION}:{ring.current_id}:"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
            if not cursor.fetchone()[0]:
                raise CommandError("another reencrypt_secrets is already running; try again when it ends", returncode=3)
        try:
            total_done = 0
            for table, column in ENCRYPTED_COLUMNS:
                total_done += self._column(table, column, prefix=prefix, batch_size=batch_size, dry_run=dry_run)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        self.stdout.write(self.style.SUCCESS(f"{total_done} secret(s) {verb} under key {ring.current_id}"))

    def _column(self, table: str, column: str, *, prefix: str, batch_size: int, dry_run: bool) -> int:
        qtable, qcolumn = connection.ops.quote_name(table), connection.ops.quote_name(column)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {qtable} WHERE left({qcolumn}, %s) <> %s", [len(prefix), prefix])
            todo = cursor.fetchone()[0]
        label = f"{table}.{column}"
        if dry_run or todo == 0:
            if self.verbosity >= 1:
                self.stdout.write(f"{label}: {todo} row(s) under an older key")
            return todo
        done, last_id = 0, None
        while True:
            with transaction.atomic(), pghistory.context(command="reencrypt_secrets"), connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id, {qcolumn} FROM {qtable} WHERE left({qcolumn}, %s) <> %s "
                    + ("AND id > %s " if last_id else "")
                    + "ORDER BY id LIMIT %s FOR UPDATE",
                    [len(prefix), prefix, *([last_id] if last_id else []), batch_size],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                updates = []
                for row_id, stored in rows:
                    try:
                        plaintext = crypto.decrypt(stored, table=table, column=column, row_id=row_id)
                    except crypto.DecryptionError as error:
                        raise CommandError(
                            f"{error}. {done} row(s) of {label} were re-encrypted before this one; "
                            "add the missing key to HONUA_ENCRYPTION_KEYS and run again to resume",
                            returncode=4,
                        ) from None
                    updates.append((row_id, crypto.encrypt(plaintext, table=table, column=column, row_id=row_id)))
                ids, values = zip(*updates, strict=True)
                cursor.execute(
                    f"UPDATE {qtable} AS t SET {qcolumn} = v.value "
                    "FROM unnest(%s::uuid[], %s::text[]) AS v(id, value) WHERE t.id = v.id",
                    [list(ids), list(values)],
                )
                last_id = rows[-1][0]
                done += len(rows)
            self._progress(label, min(done, todo), todo)
        if self.verbosity >= 1:
            self.stdout.write("")
        return done

    def _progress(self, label: str, done: int, todo: int) -> None:
        if self.verbosity < 1:
            return
        filled = BAR_WIDTH * done // max(todo, 1)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stdout.write(f"\r{label}: [{bar}] {done}/{todo}", ending="")
        self.stdout.flush()
