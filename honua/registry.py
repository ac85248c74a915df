"""Registries the domain apps add to: demo-data loaders, maintenance tasks and the six-month seed's steps.

``honua`` never imports the domain apps (imports flow intake -> builds -> licensing -> honua); instead each app
registers in its own ``demo.py`` / ``maintenance.py`` / ``seed.py``, found by ``autodiscover``, in
``INSTALLED_APPS`` order. An app split into sub-packages lists them in its ``AppConfig.subpackages``; their modules
are found too, in that order. Seed steps run in their explicit ``order`` instead (foreign keys, and the temporary
tables one app's step reads from another's, decide it; ``after`` names those and is checked).
"""

import dataclasses
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

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
    # False: it commits itself (seed_demo runs it after the others' transaction, outside any)
    atomic: bool = True


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


# One statement of a seed step: SQL text with %(name)s parameters, or a callable(cursor, params).
SeedStatement = str | Callable[[Any, dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class SeedStep:
    name: str  # the progress label
    order: int  # its place in the load (the steps run in one transaction, by increasing order)
    statements: tuple[SeedStatement, ...]
    after: tuple[str, ...] = ()  # steps whose rows or temporary tables this one reads: they must come first


_demo_loaders: dict[str, DemoLoader] = {}
_maintenance_tasks: dict[str, MaintenanceTask] = {}
_seed_steps: dict[str, SeedStep] = {}


def demo_loader(name: str, *, atomic: bool = True):
    """Register ``load(*, rng, scale)`` as the demo-data loader ``name``; ``atomic=False``: it commits itself, and
    ``seed_demo`` runs it outside its transaction (after the other loaders)."""

    def decorator(func):
        _demo_loaders[name] = DemoLoader(name=name, load=func, atomic=atomic)
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


def seed_step(name: str, *, order: int, statements: Sequence[SeedStatement], after: Sequence[str] = ()) -> SeedStep:
    """Register a step of the six-month seed (``operations.seed`` runs every app's steps, by ``order``, in one
    transaction, with the seed's parameters: ``seed``, ``anchor``, ``span``, ``customers``, the volumes...).
    ``after`` names the steps it depends on; :func:`seed_steps` refuses an order that runs one of them later."""
    if not statements:
        raise ValueError(f"seed step {name!r} has no statements")
    step = SeedStep(name=name, order=order, statements=tuple(statements), after=tuple(after))
    _seed_steps[name] = step
    return step


def seed_uid(kind: str, n: str) -> str:
    """SQL for a seed row's deterministic uuid: ``md5`` of the seed, ``kind`` and the SQL expression ``n``."""
    return f"md5('honua-seed:' || %(seed)s || ':{kind}:' || ({n}))::uuid"


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


def seed_steps() -> list[SeedStep]:
    """Every app's seed steps in the order they run; a ``ValueError`` names a step that shares its order with
    another, or that depends (``after``) on a step that is missing or does not come before it."""
    autodiscover("seed")
    steps = sorted(_seed_steps.values(), key=lambda step: step.order)
    position = {step.name: index for index, step in enumerate(steps)}
    for index, step in enumerate(steps):
        if index and steps[index - 1].order == step.order:
            raise ValueError(f"seed steps {steps[index - 1].name!r} and {step.name!r} share the order {step.order}")
        for name in step.after:
            if name not in position:
                raise ValueError(f"seed step {step.name!r} runs after {name!r}, which is not registered")
            if position[name] > index:
                raise ValueError(
                    f"seed step {step.name!r} (order {step.order}) must run after {name!r} "
                    f"(order {steps[position[name]].order})"
                )
    return steps
