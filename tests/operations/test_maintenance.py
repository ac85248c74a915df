"""The cross-app maintenance tasks run by run_maintenance: killed and resumed, dry runs, archive files, VACUUM."""

import csv
import gzip
import json
import signal
import subprocess
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from honua.maintenance_runner import LOCK_CLASS_ID
from honua.models import MaintenanceRun
from operations.maintenance import export_archive_to_files
from tests.conftest import start_manage
from tests.licensing.factories import CustomerFactory


def _scalar(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _execute(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _old_and_recent_events(old: int, recent: int) -> None:
    _execute(
        "INSERT INTO build_events (build_id, event_type, message, data, created_at)"
        " SELECT gen_random_uuid(), 'progress', 'old', '{}', now() - interval '120 days' - g * interval '1 second'"
        " FROM generate_series(1, %s) g",
        [old],
    )
    _execute(
        "INSERT INTO build_events (build_id, event_type, message, data)"
        " SELECT gen_random_uuid(), 'progress', 'recent', '{}' FROM generate_series(1, %s)",
        [recent],
    )


def _old_and_recent_accesses(old: int, recent: int) -> None:
    for count, age in ((old, "100 days"), (recent, "1 day")):
        _execute(
            "INSERT INTO build_access_log (manifest_hash, customer_id, hit, latency_us, accessed_at)"
            " SELECT encode(sha256(g::text::bytea), 'hex'), gen_random_uuid(), g %% 2 = 0, g,"
            " now() - %s::interval - g * interval '1 second' FROM generate_series(1, %s) g",
            [age, count],
        )


def _maintenance_process(db_url: str, *args: str, **env: str) -> subprocess.Popen:
    return start_manage("run_maintenance", *args, env={"DATABASE_URL": db_url, **env})


def _kill_mid_way(process: subprocess.Popen, progressed) -> None:
    """SIGKILL the process as soon as ``progressed()`` is true (some batches committed), as an OOM kill would."""
    deadline = time.monotonic() + 60
    while not progressed():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)  # reaps it and closes its pipes
    # Its server session ends (and its advisory lock with it) once the server notices the closed connection.
    while _scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s", [LOCK_CLASS_ID]):
        assert time.monotonic() < deadline
        time.sleep(0.05)


SLOW_BATCHES = {"HONUA_MAINTENANCE_BATCH_SIZE": "50", "HONUA_MAINTENANCE_BATCH_PAUSE_MS": "150"}


@pytest.mark.django_db(transaction=True)
def test_build_log_cleanup_killed_mid_way_finishes_on_the_next_run(db_url):
    """cleanup_old_build_logs killed after some batches loses nothing it should keep; the next run deletes the
    rest, counting only what was left, and recent rows survive both."""
    _old_and_recent_events(old=1000, recent=100)
    old_left = "SELECT count(*) FROM build_events WHERE message = 'old'"
    process = _maintenance_process(db_url, "weekly", "--only", "cleanup_old_build_logs", **SLOW_BATCHES)
    _kill_mid_way(process, lambda: _scalar(old_left) <= 900)
    remaining = _scalar(old_left)
    assert 0 < remaining < 1000, "the run was not killed mid-way"
    assert not MaintenanceRun.objects.exists()  # killed before it could record its run

    call_command("run_maintenance", "weekly", "--only", "cleanup_old_build_logs", stdout=StringIO())
    assert _scalar(old_left) == 0
    assert _scalar("SELECT count(*) FROM build_events WHERE message = 'recent'") == 100
    assert MaintenanceRun.objects.get().rows == remaining  # nothing counted (or deleted) twice


@pytest.mark.django_db(transaction=True)
def test_access_log_archive_killed_mid_way_loses_and_duplicates_nothing(db_url):
    """archive_build_access_log killed mid-way and re-run: every old row is archived exactly once, and only the
    recent rows stay live."""
    _old_and_recent_accesses(old=1000, recent=50)
    old_ids = set(_scalar("SELECT array_agg(id) FROM build_access_log WHERE accessed_at < now() - interval '90 days'"))
    process = _maintenance_process(
        db_url, "monthly", "--only", "archive_build_access_log", HONUA_ACCESS_LOG_ARCHIVE="table", **SLOW_BATCHES
    )
    _kill_mid_way(process, lambda: _scalar("SELECT count(*) FROM build_access_log_archive") >= 100)
    assert 0 < _scalar("SELECT count(*) FROM build_access_log_archive") < 1000, "the run was not killed mid-way"

    call_command("run_maintenance", "monthly", "--only", "archive_build_access_log", stdout=StringIO())
    archived = _scalar("SELECT array_agg(id) FROM build_access_log_archive")
    assert len(archived) == len(set(archived)) and set(archived) == old_ids
    assert _scalar("SELECT count(*) FROM build_access_log") == 50


@pytest.mark.django_db(transaction=True)
def test_soft_delete_purge_killed_mid_way_finishes_on_the_next_run(db_url):
    """purge_soft_deleted_records killed mid-way and re-run: every conversation soft-deleted past the retention
    goes with its messages, none is counted twice, and live conversations keep theirs."""
    customer = CustomerFactory()
    _execute(
        "INSERT INTO conversations (customer_id, channel, status, model, title, message_count, prompt_tokens,"
        " completion_tokens, total_cost, satisfaction_comment, metadata)"
        " SELECT %s, 'web', 'active', 'm', 'c' || g, 0, 0, 0, 0, '', '{}' FROM generate_series(1, 420) g",
        [customer.pk],
    )
    _execute(
        "INSERT INTO conversation_messages (conversation_id, role, content, prompt_tokens, completion_tokens, cost,"
        " model) SELECT c.id, 'user', 'hi', 0, 0, 0, '' FROM conversations c CROSS JOIN generate_series(1, 2)"
    )
    # Messages go to active conversations only; then 400 of them end and are soft-deleted 40 days ago.
    _execute(
        "UPDATE conversations SET status = 'completed',"
        " deleted_at = CASE WHEN substr(title, 2)::int <= 400 THEN now() - interval '40 days' END"
    )
    gone = "SELECT count(*) FROM conversations WHERE deleted_at IS NOT NULL"
    process = _maintenance_process(
        db_url,
        "monthly",
        "--only",
        "purge_soft_deleted_records",
        **{**SLOW_BATCHES, "HONUA_MAINTENANCE_BATCH_SIZE": "20"},
    )
    _kill_mid_way(process, lambda: _scalar(gone) <= 360)
    left = _scalar(gone)
    assert 0 < left < 400, "the run was not killed mid-way"

    call_command("run_maintenance", "monthly", "--only", "purge_soft_deleted_records", stdout=StringIO())
    assert _scalar(gone) == 0
    assert _scalar("SELECT count(*) FROM conversations") == 20
    assert _scalar("SELECT count(*) FROM conversation_messages") == 40
    assert MaintenanceRun.objects.get().rows == left * 3  # each conversation and its two messages, once


@pytest.mark.django_db(transaction=True)
def test_archive_to_files_writes_one_gzip_per_month_and_survives_a_crash(tmp_path, settings):
    """File mode writes each month's archived rows to build_access_log-YYYY-MM.csv.gz and empties the archive
    table; rows archived again after a crash (file renamed, delete not committed) appear once in the file."""
    settings.HONUA_ACCESS_LOG_ARCHIVE = "file"
    settings.HONUA_ACCESS_LOG_ARCHIVE_DIR = str(tmp_path)
    _execute(
        "INSERT INTO build_access_log (manifest_hash, customer_id, hit, accessed_at) SELECT repeat('a', 64),"
        " gen_random_uuid(), true, timestamptz '2026-01-31 23:00:00+00' + g * interval '1 hour'"
        " FROM generate_series(0, 3) g"
    )  # 23:00 on Jan 31 and 00:00..02:00 on Feb 1 (UTC)
    ids = _scalar("SELECT array_agg(id ORDER BY id) FROM build_access_log")
    call_command("run_maintenance", "monthly", "--only", "archive_build_access_log", stdout=StringIO())
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "build_access_log-2026-01.csv.gz",
        "build_access_log-2026-02.csv.gz",
    ]
    assert _scalar("SELECT count(*) FROM build_access_log_archive") == 0

    def file_ids(month: str) -> list[int]:
        with gzip.open(tmp_path / f"build_access_log-{month}.csv.gz", "rt", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0][0] == "id"
        return [int(row[0]) for row in rows[1:]]

    assert (file_ids("2026-01"), file_ids("2026-02")) == ([ids[0]], ids[1:])
    # A crash after the file was renamed but before the archive's month was dropped: the month is still there.
    _execute("SELECT partition_create_month('build_access_log_archive', '2026-02-01 00:00+00')")
    _execute(
        "INSERT INTO build_access_log_archive (id, manifest_hash, customer_id, hit, accessed_at)"
        " VALUES (%s, repeat('a', 64), gen_random_uuid(), true, timestamptz '2026-02-01 01:00:00+00')",
        [ids[2]],
    )
    export_archive_to_files(tmp_path)
    assert file_ids("2026-02") == ids[1:]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.django_db
def test_weekly_and_monthly_dry_run_change_nothing():
    """A dry run of the weekly and monthly tasks reports exact counts and deletes or archives nothing."""
    _old_and_recent_events(old=7, recent=3)
    _old_and_recent_accesses(old=4, recent=2)
    out = StringIO()
    call_command("run_maintenance", "all", "--dry-run", "--format", "json", stdout=out)

    rows = {task["task"]: task["rows"] for task in json.loads(out.getvalue())["tasks"]}
    assert rows["cleanup_old_build_logs"] == 7 and rows["archive_build_access_log"] == 4
    assert _scalar("SELECT count(*) FROM build_events") == 10
    assert _scalar("SELECT count(*) FROM build_access_log") == 6
    assert _scalar("SELECT count(*) FROM build_access_log_archive") == 0


@pytest.mark.django_db
def test_negative_retention_setting_fails_the_task_clearly(settings):
    """A negative retention in the settings fails that task with a message naming the setting, exit status 1."""
    settings.HONUA_BUILD_LOG_RETENTION_DAYS = -5
    _old_and_recent_events(old=2, recent=0)
    with pytest.raises(CommandError) as info:
        call_command("run_maintenance", "weekly", "--only", "cleanup_old_build_logs", stdout=StringIO())
    assert info.value.returncode == 1
    assert MaintenanceRun.objects.get().error == (
        "ValueError: HONUA_BUILD_LOG_RETENTION_DAYS must be zero or more days, got -5"
    )
    assert _scalar("SELECT count(*) FROM build_events") == 2


@pytest.mark.django_db
def test_unknown_archive_mode_fails_the_task_clearly(settings):
    """An archive mode other than table or file is refused with a clear message."""
    settings.HONUA_ACCESS_LOG_ARCHIVE = "tape"
    with pytest.raises(CommandError):
        call_command("run_maintenance", "monthly", "--only", "archive_build_access_log", stdout=StringIO())
    assert "must be 'table' or 'file', got 'tape'" in MaintenanceRun.objects.get().error


@pytest.mark.django_db(transaction=True)
def test_weekly_vacuums_and_reports_bloat():
    """The weekly schedule runs cleanup, VACUUM (ANALYZE) and the bloat report, all succeeding."""
    _old_and_recent_events(old=20, recent=5)
    _execute("DELETE FROM build_events WHERE message = 'recent'")
    call_command("run_maintenance", "weekly", stdout=StringIO())
    runs = {run.task: run for run in MaintenanceRun.objects.all()}
    assert {"cleanup_old_build_logs", "vacuum_analyze", "index_bloat_report"} <= set(runs)
    assert all(run.outcome == "succeeded" for run in runs.values())
    assert runs["cleanup_old_build_logs"].rows == 20
    assert _scalar("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'build_events'") == 0


@pytest.mark.django_db
def test_archive_admin_lists_archived_rows_read_only(admin_client):
    """Archived lookups are listed in the admin and cannot be added."""
    _old_and_recent_accesses(old=3, recent=0)
    call_command("run_maintenance", "monthly", "--only", "archive_build_access_log", stdout=StringIO())
    response = admin_client.get("/admin/operations/accesslogarchive/")
    assert response.status_code == 200 and response.content.decode().count("<tr") >= 4
    assert admin_client.get("/admin/operations/accesslogarchive/add/").status_code == 403
