"""Registries the domain apps add to: demo-data loaders and maintenance tasks.

``honua`` never imports the domain apps (imports flow intake -> builds -> licensing -> honua); instead each app
registers in its own ``demo.py`` / ``maintenance.py``, found by ``autodiscover``, in ``INSTALLED_APPS`` order. An
app split into sub-packages lists them in its ``AppConfig.subpackages``; their modules are found too, in that order.
"""

import dataclasses
from collections.abc import Callable
from importlib import import_module

from django.apps import apps
from django.utils.module_loading import module_has_submodule

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


def autodiscover(module_name: str) -> None:
    """Import ``<app>.<module_name>`` and ``<app>.<subpackage>.<module_name>`` of every installed app that has one."""
    for app_config in apps.get_app_configs():
        for package_name in (
            app_config.name,
            *(f"{app_config.name}.{sub}" for sub in getattr(app_config, "subpackages", ())),
        ):
            package = import_module(package_name)
            if module_has_submodule(package, module_name):
                import_module(f"{package_name}.{module_name}")


def demo_loaders() -> list[DemoLoader]:
    autodiscover("demo")
    return list(_demo_loaders.values())


def maintenance_tasks() -> list[MaintenanceTask]:
    autodiscover("maintenance")
    return list(_maintenance_tasks.values())
