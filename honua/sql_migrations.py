"""``RunSQLFile``: a migration operation that runs ``<app>/sql/<name>.sql`` (and its ``.reverse.sql``)."""

from pathlib import Path

from django.apps import apps
from django.db import migrations


def sql_dir(app_label: str) -> Path:
    return Path(apps.get_app_config(app_label).path) / "sql"


class RunSQLFile(migrations.RunSQL):
    """Run ``<app>/sql/<name>.sql`` forwards and ``<app>/sql/<name>.reverse.sql`` backwards.

    Both files are required, so every SQL migration can be reversed. The files are read when the migration is
    loaded; the migration ledger checksums them with the migration, so an edit to a released file shows.
    ``lock_timeout`` bounds how long DDL waits behind a busy table instead of queueing every other query.
    """

    def __init__(self, app_label: str, name: str, *, lock_timeout: str = "5s", elidable: bool = False):
        self.app_label = app_label
        self.name = name
        self.lock_timeout = lock_timeout
        forward, reverse = self.paths()
        prefix = f"SET LOCAL lock_timeout = '{lock_timeout}';\n" if lock_timeout else ""
        super().__init__(
            sql=prefix + forward.read_text(),
            reverse_sql=prefix + reverse.read_text(),
            elidable=elidable,
        )

    def paths(self) -> tuple[Path, Path]:
        folder = sql_dir(self.app_label)
        return folder / f"{self.name}.sql", folder / f"{self.name}.reverse.sql"

    def deconstruct(self):
        kwargs: dict[str, object] = {}
        if self.lock_timeout != "5s":
            kwargs["lock_timeout"] = self.lock_timeout
        if self.elidable:
            kwargs["elidable"] = True
        return (self.__class__.__qualname__, [self.app_label, self.name], kwargs)

    def describe(self) -> str:
        return f"Run {self.app_label}/sql/{self.name}.sql"


class ConvertToPartitions(migrations.RunSQL):
    """Turn ``table`` into a table partitioned by month on ``column`` (builds/sql/0031_partitions.sql), in a
    non-atomic migration: each statement runs in its own transaction, so the CHECK constraint is validated and the
    unique index on (id, column) built while writers keep writing, and only the swap takes the table's ACCESS
    EXCLUSIVE lock (briefly, with a short lock_timeout). Backwards, ``partition_unconvert`` copies the rows back into
    a plain table."""

    def __init__(self, table: str, column: str):
        self.table = table
        self.column = column
        super().__init__(
            sql=[
                # DO, not SELECT: export_sql records only statements that change something.
                f"DO $$ BEGIN PERFORM partition_convert_prepare('{table}', '{column}'); END $$",
                f"ALTER TABLE {table} VALIDATE CONSTRAINT {table}_partition_bound",
                f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {table}_id_{column}_key ON {table} (id, {column})",
                f"DO $$ BEGIN PERFORM partition_convert_swap('{table}', '{column}'); END $$",
            ],
            reverse_sql=[f"DO $$ BEGIN PERFORM partition_unconvert('{table}'); END $$"],
        )

    def deconstruct(self):
        return (self.__class__.__qualname__, [self.table, self.column], {})

    def describe(self) -> str:
        return f"Partition {self.table} by month on {self.column}"


class AtomicSeparateDatabaseAndState(migrations.SeparateDatabaseAndState):
    """``SeparateDatabaseAndState`` run in one transaction even inside a non-atomic migration (Django wraps an
    operation whose ``atomic`` is true), so that e.g. a trigger removed and added again is never missing."""

    atomic = True
