"""The machinery behind ``run_maintenance``: pick a schedule's tasks, lock the schedule, run each task in its own
transaction, record every run.

Guarantees:

- One run per schedule at a time: a session-level PostgreSQL advisory lock per schedule (``pg_locks`` shows it as
  ``classid = 1215262325``, ``objid`` = the schedule's position in ``SCHEDULES``). A run that finds its lock held
  does nothing and says so. The lock dies with the session, so a killed run never leaves it behind.
- Each task runs in its own transaction (a savepoint when the caller already holds one), so a failing task does
  not undo the others; the run goes on and reports the failure.
- ``dry_run``: a transactional task's transaction is rolled back, so its count is exact and nothing changes; a
  non-transactional task is told ``dry_run=True`` and reports what it would do. Dry runs are not recorded.
- Every real run of a task is recorded in ``maintenance_runs`` (``MaintenanceRun``), committed as it finishes.
"""

import dataclasses
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from honua.errors import HonuaError
from honua.registry import SCHEDULES, MaintenanceTask, TaskResult, maintenance_tasks

ALL = "all"
LOCK_CLASS_ID = 0x486F6E75  # "Honu": the first key of run_maintenance's advisory locks
UNKNOWN_SCHEDULE = "unknown schedule {schedule!r}; expected one of: {expected}"
UNKNOWN_TASK = "unknown maintenance task {task!r}; known tasks: {known}"
WRONG_SCHEDULE = "task {task!r} runs on the {actual} schedule, not {requested}"
MAX_ERROR_CHARS = 2000


class MaintenanceError(HonuaError, ValueError):
    """Bad input to run_maintenance: an unknown schedule or task."""


@dataclasses.dataclass
class TaskOutcome:
    task: str
    schedule: str
    outcome: str  # "succeeded" or "failed"
    rows: int
    duration_ms: int
    started_at: datetime
    detail: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data


@dataclasses.dataclass
class RunReport:
    schedule: str
    dry_run: bool
    run_id: uuid.UUID
    started_at: datetime
    duration_ms: int = 0
    locked_out: list[str] = dataclasses.field(default_factory=list)  # schedules another run holds
    tasks: list[TaskOutcome] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.tasks)

    @property
    def failed(self) -> list[TaskOutcome]:
        return [outcome for outcome in self.tasks if not outcome.ok]

    def as_dict(self) -> dict:
        return {
            "schedule": self.schedule,
            "dry_run": self.dry_run,
            "run_id": str(self.run_id),
            "started_at": self.started_at.isoformat(),
            "duration_ms": self.duration_ms,
            "locked": bool(self.locked_out),
            "locked_out": self.locked_out,
            "ok": self.ok,
            "tasks": [outcome.as_dict() for outcome in self.tasks],
        }


def select_tasks(schedule: str, *, only: str | None = None) -> list[MaintenanceTask]:
    """The tasks ``schedule`` (or ``all``) runs, in order; with ``only``, just that task (which must belong)."""
    if schedule != ALL and schedule not in SCHEDULES:
        raise MaintenanceError(UNKNOWN_SCHEDULE.format(schedule=schedule, expected=", ".join((*SCHEDULES, ALL))))
    tasks = maintenance_tasks()
    if only is not None:
        by_name = {task.name: task for task in tasks}
        if only not in by_name:
            raise MaintenanceError(UNKNOWN_TASK.format(task=only, known=", ".join(sorted(by_name)) or "none"))
        task = by_name[only]
        if schedule not in (ALL, task.schedule):
            raise MaintenanceError(WRONG_SCHEDULE.format(task=only, actual=task.schedule, requested=schedule))
        return [task]
    schedules = SCHEDULES if schedule == ALL else (schedule,)
    return [task for wanted in schedules for task in tasks if task.schedule == wanted]


def _lock_keys(schedules) -> list[tuple[str, int]]:
    return [(schedule, SCHEDULES.index(schedule)) for schedule in schedules]


def _try_locks(connection, schedules) -> tuple[list[str], list[str]]:
    """Take each schedule's advisory lock; returns (taken, held elsewhere)."""
    taken: list[str] = []
    busy: list[str] = []
    with connection.cursor() as cursor:
        for schedule, key in _lock_keys(schedules):
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS_ID, key])
            (taken if cursor.fetchone()[0] else busy).append(schedule)
    return taken, busy


def _release_locks(connection, schedules) -> None:
    with connection.cursor() as cursor:
        for _, key in _lock_keys(schedules):
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS_ID, key])


def _error_text(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_CHARS]


def run_task(task: MaintenanceTask, *, dry_run: bool, using: str = "default") -> TaskOutcome:
    """Run one task in its own transaction (rolled back under ``dry_run`` when the task is transactional)."""
    started_at = timezone.now()
    start = time.monotonic()
    rows, detail, error = 0, "", ""
    try:
        if task.transactional:
            with transaction.atomic(using=using):
                with connections[using].cursor() as cursor:
                    # Maintenance waits briefly for a busy row or table, then fails rather than queueing others.
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [maintenance_lock_timeout()])
                result = task.run(dry_run=dry_run)
                if dry_run:
                    transaction.set_rollback(True, using=using)
        elif connections[using].in_atomic_block:
            # Called inside the caller's transaction (tests, scripts): a savepoint keeps a failure contained.
            with transaction.atomic(using=using):
                result = task.run(dry_run=dry_run)
        else:
            result = task.run(dry_run=dry_run)
        if isinstance(result, TaskResult):
            rows, detail = result.rows, result.detail
        else:
            rows = int(result or 0)
        outcome = "succeeded"
    except Exception as exc:  # a task's failure is reported, never allowed to stop the others
        outcome, error = "failed", _error_text(exc)
    return TaskOutcome(
        task=task.name,
        schedule=task.schedule,
        outcome=outcome,
        rows=max(rows, 0),
        duration_ms=round((time.monotonic() - start) * 1000),
        started_at=started_at,
        detail=detail,
        error=error,
    )


def maintenance_lock_timeout() -> str:
    """How long a maintenance statement waits for a lock (``HONUA_MAINTENANCE_LOCK_TIMEOUT``)."""
    return getattr(settings, "HONUA_MAINTENANCE_LOCK_TIMEOUT", "5s")


def run_maintenance(
    schedule: str,
    *,
    only: str | None = None,
    dry_run: bool = False,
    using: str = "default",
    on_task: Callable[[TaskOutcome], None] | None = None,
) -> RunReport:
    """Run ``schedule``'s tasks (or ``only`` that one) under the schedule's advisory lock; see the module doc."""
    from honua.models import MaintenanceRun

    tasks = select_tasks(schedule, only=only)
    report = RunReport(schedule=schedule, dry_run=dry_run, run_id=uuid.uuid4(), started_at=timezone.now())
    start = time.monotonic()
    connection = connections[using]
    # The lock of the schedule(s) this run works for: --only takes its task's schedule's lock.
    if only is not None:
        schedules = [tasks[0].schedule]
    elif schedule == ALL:
        schedules = list(SCHEDULES)
    else:
        schedules = [schedule]
    taken, busy = _try_locks(connection, schedules)
    try:
        if busy:
            report.locked_out = busy
            return report
        for task in tasks:
            outcome = run_task(task, dry_run=dry_run, using=using)
            report.tasks.append(outcome)
            if not dry_run:
                MaintenanceRun.objects.using(using).create(
                    run_id=report.run_id,
                    schedule=task.schedule,
                    task=task.name,
                    outcome=outcome.outcome,
                    rows=outcome.rows,
                    started_at=outcome.started_at,
                    duration_ms=outcome.duration_ms,
                    detail=outcome.detail,
                    error=outcome.error,
                )
            if on_task is not None:
                on_task(outcome)
    finally:
        _release_locks(connection, taken)
        report.duration_ms = round((time.monotonic() - start) * 1000)
    return report
