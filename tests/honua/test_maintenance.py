"""run_maintenance and its runner: schedules, the advisory lock, dry runs, failures, JSON and run records."""

import json
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from honua import registry
from honua.maintenance_runner import LOCK_CLASS_ID, run_maintenance
from honua.models import MaintenanceRun
from honua.registry import TaskResult, maintenance_task
from licensing.models import Customer
from tests.conftest import run_manage


@pytest.fixture
def tasks(monkeypatch):
    """An empty task registry for the test: only the tasks the test registers exist."""
    registry.maintenance_tasks()  # import every app's maintenance.py first, so nothing registers later
    monkeypatch.setattr(registry, "_maintenance_tasks", {})
    return maintenance_task


def _customers(prefix: str) -> int:
    return Customer.objects.filter(name__startswith=prefix).count()


def _register_creator(tasks, name: str, *, schedule: str = "hourly", count: int = 1, fail: bool = False):
    @tasks(name, schedule=schedule, description=f"creates {count} customer(s)")
    def run(*, dry_run: bool) -> int:
        Customer.objects.bulk_create(Customer(name=f"{name}-{i}") for i in range(count))
        if fail:
            raise RuntimeError(f"{name} broke on purpose")
        return count

    return run


def _maintain(*args: str) -> str:
    out = StringIO()
    call_command("run_maintenance", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_runs_the_schedules_tasks_in_order_and_records_each(tasks):
    """A schedule runs its tasks in registration order; each run is recorded with rows, duration and outcome."""
    _register_creator(tasks, "first", count=2)
    _register_creator(tasks, "second", count=3)
    _register_creator(tasks, "other-schedule", schedule="daily")
    output = _maintain("hourly")
    assert output.index("first") < output.index("second")
    assert "other-schedule" not in output
    assert (_customers("first"), _customers("second"), _customers("other-schedule")) == (2, 3, 0)
    runs = list(MaintenanceRun.objects.order_by("id"))
    assert [(r.task, r.schedule, r.outcome, r.rows) for r in runs] == [
        ("first", "hourly", "succeeded", 2),
        ("second", "hourly", "succeeded", 3),
    ]
    assert runs[0].run_id == runs[1].run_id
    assert all(r.duration_ms >= 0 and r.error == "" for r in runs)


@pytest.mark.django_db
def test_all_runs_every_schedule_hourly_first(tasks):
    """`all` runs the tasks of every schedule, from hourly to monthly."""
    _register_creator(tasks, "monthly-task", schedule="monthly")
    _register_creator(tasks, "hourly-task", schedule="hourly")
    report = run_maintenance("all")
    assert [outcome.task for outcome in report.tasks] == ["hourly-task", "monthly-task"]


@pytest.mark.django_db
def test_failing_task_does_not_undo_the_others_and_fails_the_command(tasks):
    """A failing task's changes are rolled back, the tasks around it keep theirs, and the exit status is 1."""
    _register_creator(tasks, "before")
    _register_creator(tasks, "broken", fail=True)
    _register_creator(tasks, "after")
    with pytest.raises(CommandError, match="1 maintenance task\\(s\\) failed: broken") as info:
        _maintain("hourly")
    assert info.value.returncode == 1
    assert (_customers("before"), _customers("broken"), _customers("after")) == (1, 0, 1)
    outcomes = dict(MaintenanceRun.objects.values_list("task", "outcome"))
    assert outcomes == {"before": "succeeded", "broken": "failed", "after": "succeeded"}
    assert MaintenanceRun.objects.get(task="broken").error == "RuntimeError: broken broke on purpose"


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_reports_exact_counts(tasks):
    """--dry-run rolls back a transactional task, reports what it would change, and records nothing."""
    _register_creator(tasks, "creator", count=3)
    output = _maintain("hourly", "--dry-run")
    assert "3 row(s) would change" in output
    assert _customers("creator") == 0
    assert not MaintenanceRun.objects.exists()


@pytest.mark.django_db
def test_dry_run_tells_a_non_transactional_task(tasks):
    """A non-transactional task (e.g. VACUUM) is called with dry_run=True and reports what it would do."""
    seen = []

    @tasks("vacuum-like", schedule="weekly", transactional=False)
    def run(*, dry_run: bool) -> TaskResult:
        seen.append(dry_run)
        return TaskResult(7, "would vacuum 7 tables" if dry_run else "vacuumed")

    output = _maintain("weekly", "--dry-run")
    assert seen == [True]
    assert "would vacuum 7 tables" in output


@pytest.mark.django_db
def test_json_output_for_monitoring(tasks):
    """--format json prints one JSON object with each task's outcome, rows and duration."""
    _register_creator(tasks, "creator", count=2)
    report = json.loads(_maintain("hourly", "--format", "json"))
    assert report["schedule"] == "hourly" and report["ok"] is True and report["locked"] is False
    [task] = report["tasks"]
    assert (task["task"], task["outcome"], task["rows"]) == ("creator", "succeeded", 2)
    assert isinstance(task["duration_ms"], int)


@pytest.mark.django_db
def test_json_output_reports_a_failure_and_still_exits_nonzero(tasks):
    """With --format json a failed task is in the JSON (ok false, its error) and the exit status is 1."""
    _register_creator(tasks, "broken", fail=True)
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("run_maintenance", "hourly", "--format", "json", stdout=out)
    assert info.value.returncode == 1
    report = json.loads(out.getvalue())
    assert report["ok"] is False and report["tasks"][0]["error"].startswith("RuntimeError")


@pytest.mark.django_db
def test_only_runs_one_task(tasks):
    """--only TASK runs that task alone."""
    _register_creator(tasks, "wanted")
    _register_creator(tasks, "unwanted")
    _maintain("hourly", "--only", "wanted")
    assert (_customers("wanted"), _customers("unwanted")) == (1, 0)


@pytest.mark.django_db
def test_unknown_task_is_a_clear_error(tasks):
    """An unknown --only task name fails with exit status 2, naming the known tasks, and runs nothing."""
    _register_creator(tasks, "known")
    with pytest.raises(CommandError, match="unknown maintenance task 'nope'; known tasks: known") as info:
        _maintain("hourly", "--only", "nope")
    assert info.value.returncode == 2
    assert _customers("known") == 0


@pytest.mark.django_db
def test_only_task_of_another_schedule_is_refused(tasks):
    """--only with a task of another schedule says which schedule it belongs to."""
    _register_creator(tasks, "daily-task", schedule="daily")
    with pytest.raises(CommandError, match="runs on the daily schedule, not hourly"):
        _maintain("hourly", "--only", "daily-task")
    _maintain("all", "--only", "daily-task")
    assert _customers("daily-task") == 1


@pytest.mark.django_db
def test_unknown_schedule_is_a_clear_error():
    """An unknown schedule is refused by the argument parser, listing the valid ones."""
    with pytest.raises(CommandError, match="invalid choice: 'fortnightly'"):
        _maintain("fortnightly")


def test_registering_a_task_on_an_unknown_schedule_fails():
    """A task cannot be registered on a schedule that does not exist."""
    with pytest.raises(ValueError, match="unknown schedule 'sometimes'"):
        maintenance_task("x", schedule="sometimes")


@pytest.mark.django_db
def test_cli_exit_status_on_bad_input(db_url):
    """From the shell, an unknown schedule or task exits 2 with a one-line error."""
    bad_schedule = run_manage("run_maintenance", "fortnightly", env={"DATABASE_URL": db_url})
    assert bad_schedule.returncode == 2 and "invalid choice" in bad_schedule.stderr
    bad_task = run_manage("run_maintenance", "hourly", "--only", "nope", env={"DATABASE_URL": db_url})
    assert bad_task.returncode == 2 and "unknown maintenance task 'nope'" in bad_task.stderr
    assert "Traceback" not in bad_task.stderr


@pytest.mark.django_db
def test_empty_schedule_succeeds(tasks):
    """A schedule with no tasks reports so and exits 0."""
    assert "no maintenance task is registered for monthly" in _maintain("monthly")


@pytest.mark.django_db(transaction=True)
def test_overlapping_run_of_the_same_schedule_does_nothing(tasks):
    """Two concurrent runs of a schedule: one works, the other says so, exits 0 and changes nothing."""
    started, release = threading.Event(), threading.Event()
    calls = []

    @tasks("slow", schedule="hourly")
    def slow(*, dry_run: bool) -> int:
        calls.append(threading.current_thread().name)
        Customer.objects.create(name="slow-0")
        started.set()
        assert release.wait(10)
        return 1

    results = {}

    def first_run():
        try:
            results["first"] = _maintain("hourly")
        finally:
            connection.close()

    worker = threading.Thread(target=first_run, name="first")
    worker.start()
    try:
        assert started.wait(10)
        second = _maintain("hourly")
        other_schedule = run_maintenance("daily")  # a different schedule is not blocked
        everything = run_maintenance("all")  # `all` needs every schedule's lock
    finally:
        release.set()
        worker.join(10)
    assert "already running in another session; nothing done" in second
    assert other_schedule.locked_out == [] and everything.locked_out == ["hourly"]
    assert calls == ["first"]
    assert _customers("slow") == 1
    assert list(MaintenanceRun.objects.values_list("task", "outcome")) == [("slow", "succeeded")]
    assert "1 task(s) succeeded" in results["first"]
    # The lock was released: the next run works.
    assert run_maintenance("hourly").tasks[0].ok


@pytest.mark.django_db(transaction=True)
def test_lock_is_released_when_a_task_fails(tasks):
    """A run whose task fails releases its schedule's lock, so the next run is not locked out."""
    _register_creator(tasks, "broken", fail=True)
    run_maintenance("hourly")
    with connection.cursor() as cursor:
        cursor.execute(  # advisory locks of this test database only: other databases on the server run their own
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [LOCK_CLASS_ID],
        )
        assert cursor.fetchone()[0] == 0
    assert run_maintenance("hourly").locked_out == []


@pytest.mark.django_db(transaction=True)
def test_cli_run_while_the_schedule_is_locked_exits_0_and_records_nothing(db_url):
    """From the shell, a run whose schedule another session holds says so, exits 0 and records nothing."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, 0)", [LOCK_CLASS_ID])  # hourly's lock, as a running run holds it
        try:
            result = run_manage("run_maintenance", "hourly", "--format", "json", env={"DATABASE_URL": db_url})
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s, 0)", [LOCK_CLASS_ID])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["locked"] is True and report["locked_out"] == ["hourly"] and report["tasks"] == []
    assert not MaintenanceRun.objects.exists()
