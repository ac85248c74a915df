"""Registries the domain apps add to: demo-data loaders and maintenance tasks.

``honua`` never imports the domain apps (imports flow intake -> builds -> licensing -> honua); instead each app
registers in its own ``demo.py`` / ``maintenance.py``, found by ``autodiscover``, in ``INSTALLED_APPS`` order.
"""

import dataclasses
from collections.abc import Callable

from django.utils.module_loading import autodiscover_modules

SCHEDULES = ("hourly", "every-6-hours", "daily", "weekly", "monthly")


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """What a task may return instead of a bare row count: the count and a short human-readable detail."""

    rows: int
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class DemoLoader:
    name: str
    load: Callable[..., str]  # load(*, rng, scale) -> a one-line summary of what it created


@dataclasses.dataclass(frozen=True)
class MaintenanceTask:
    name: str
    schedule: str
    run: Callable[..., int | TaskResult]  # run(*, dry_run) -> rows changed (or that would change)
    description: str = ""
    # A transactional task runs inside one transaction, which run_maintenance rolls back under --dry-run (so
    # the task may simply do its work and report exact counts). A non-transactional task (VACUUM, batched
    # deletes committing between batches) runs in autocommit mode and must itself honour dry_run.
    transactional: bool = True


_demo_loaders: dict[str, DemoLoader] = {}
_maintenance_tasks: dict[str, MaintenanceTask] = {}


def demo_loader(name: str):
    """Register ``load(*, rng, scale)`` as the demo-data loader ``name``."""

    def decorator(func):
        _demo_loaders[name] = DemoLoader(name=name, load=func)
        return func

    return decorator


def maintenance_task(name: str, *, schedule: str, description: str = "", transactional: bool = True):
    """Register ``run(*, dry_run)`` as the maintenance task ``name`` on ``schedule``.

    Tasks of a schedule run in registration order (``INSTALLED_APPS`` order, then order within the module).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")

    def decorator(func):
        _maintenance_tasks[name] = MaintenanceTask(
            name=name, schedule=schedule, run=func, description=description, transactional=transactional
        )
        return func

    return decorator


def demo_loaders() -> list[DemoLoader]:
    autodiscover_modules("demo")
    return list(_demo_loaders.values())


def maintenance_tasks() -> list[MaintenanceTask]:
    autodiscover_modules("maintenance")
    return list(_maintenance_tasks.values())
