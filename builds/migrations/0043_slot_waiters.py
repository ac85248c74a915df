from django.db import migrations

from honua.sql_migrations import RunSQLFile


class Migration(migrations.Migration):
    """The `slot` wake-up is sent only while an agent waits for one (builds/sql/0043_slot_waiters.sql): notifying
    transactions commit one at a time, so a wake-up nobody listens for made every completion of a busy fleet wait
    for the others' WAL flushes."""

    dependencies = [
        ("builds", "0042_fold_dirty_days"),
    ]

    operations = [
        RunSQLFile("builds", "0043_slot_waiters"),
    ]
