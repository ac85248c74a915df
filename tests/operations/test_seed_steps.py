"""The six-month seed's steps: each app registers its own (honua.registry.seed_step), run in an order that keeps
every foreign key and every temporary table a step reads from another app's step."""

import re
from pathlib import Path

import pytest
from django.apps import apps

from honua import registry
from operations import seed

ROOT = Path(__file__).resolve().parents[2]
SEED_MODULES = {
    "licensing/seed.py": "licensing",
    "intake/seed.py": "intake",
    "builds/queue/seed.py": "builds",
    "builds/cache/seed.py": "builds",
}
WRITE = re.compile(r"\b(?:INSERT INTO|UPDATE|DELETE FROM)\s+([a-z_]+)\b")


@pytest.fixture
def restore_seed_steps():
    """Leave the registry as it was (a test adds a step). The apps' steps are discovered first: a snapshot taken
    before their modules were imported would be empty, and restoring it would leave every later test in this
    process without steps (the modules, once imported, do not register again)."""
    registry.seed_steps()
    saved = dict(registry._seed_steps)
    yield
    registry._seed_steps.clear()
    registry._seed_steps.update(saved)


def test_each_app_owns_its_steps_and_licensing_comes_first():
    """The steps come from licensing, builds.queue, builds.cache and intake, licensing's before any other, and the
    orchestration adds only the partitions and the setting aside of indexes before, their rebuilding before the
    summaries, and ANALYZE after."""
    names = [step.name for step in registry.seed_steps()]
    assert names[:3] == ["customers", "licenses and registry credentials", "secrets"]
    assert names.index("conversations") < names.index("builds") < names.index("build manifests")
    assert names.index("cache entries drawn") < names.index("builds queued") < names.index("build cache")
    labels = [label for label, _ in seed.steps()]
    load = [step.name for step in registry.seed_steps() if step.order < seed.SUMMARY_ORDER]
    summaries = names[len(load) :]
    assert labels == [
        "monthly partitions",
        "indexes set aside for the load",
        *load,
        "indexes rebuilt",
        *summaries,
        "statistics (ANALYZE)",
    ]


def test_each_apps_steps_write_only_that_apps_tables():
    """licensing/seed.py writes customers, licenses and credentials only; intake's and builds' modules their own
    app's tables (the cross-app parts read the other apps' temporary tables, never write their tables)."""
    owner = {model._meta.db_table: model._meta.app_label for model in apps.get_models(include_auto_created=True)}
    for path, app in SEED_MODULES.items():
        written = set(WRITE.findall((ROOT / path).read_text())) - {"seed_builds", "seed_build_draw", "seed_entries"}
        assert written, path
        assert {table: owner.get(table) for table in written} == dict.fromkeys(written, app), path


def test_every_step_runs_after_the_steps_it_names():
    """Each step's ``after`` names registered steps that run before it."""
    steps = registry.seed_steps()
    position = {step.name: index for index, step in enumerate(steps)}
    assert all(position[name] < position[step.name] for step in steps for name in step.after)
    assert sum(len(step.after) for step in steps) >= len(steps) - 2  # only the first steps depend on nothing


def test_a_step_ordered_before_what_it_reads_is_refused(restore_seed_steps):
    """A step whose order puts it before a step it names in ``after`` makes seed_steps raise, naming both."""
    registry.seed_step("too early", order=105, after=["builds"], statements=["SELECT 1"])
    with pytest.raises(ValueError, match=r"'too early' .* must run after 'builds'"):
        registry.seed_steps()


def test_two_steps_with_one_order_are_refused(restore_seed_steps):
    """Two steps may not share an order (their relative order would be an accident of import order)."""
    registry.seed_step("same place", order=100, statements=["SELECT 1"])
    with pytest.raises(ValueError, match="share the order 100"):
        registry.seed_steps()
