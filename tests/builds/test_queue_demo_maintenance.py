"""The queue's demo loader (every state, idempotent) and its hourly maintenance task."""

import datetime as dt
import random
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build
from builds.queue import demo as queue_demo
from builds.queue import selectors
from honua.registry import maintenance_tasks
from tests.builds.factories import BuildFactory

pytestmark = pytest.mark.django_db


def test_demo_creates_builds_in_every_state_once():
    """The demo queue has queued, running, succeeded, failed, cancelled and cache-hit builds; a second run adds
    nothing."""
    summary = queue_demo.load(rng=random.Random(1), scale="demo")
    statuses = Counter(Build.objects.values_list("status", flat=True))
    assert {"queued", "running", "succeeded", "failed", "cancelled"} <= set(statuses), summary
    assert Build.objects.filter(cache_hit=True).count() == 1
    assert queue_demo.load(rng=random.Random(1), scale="demo") == "demo builds already loaded"
    assert Counter(Build.objects.values_list("status", flat=True)) == statuses


def test_demo_does_nothing_at_other_scales():
    """Only the small 'demo' scale loads builds."""
    assert queue_demo.load(rng=random.Random(1), scale="large") == "nothing for this scale"
    assert not Build.objects.exists()


def test_handle_build_timeouts_is_an_hourly_task_with_a_dry_run():
    """The hourly task counts stuck builds in a dry run without changing them, then rescues them."""
    task = {t.name: t for t in maintenance_tasks()}["handle_build_timeouts"]
    assert task.schedule == "hourly"
    build = BuildFactory()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM get_next_build_for_worker('w')")
    Build.objects.filter(pk=build.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    assert task.run(dry_run=True) == 1
    assert Build.objects.get(pk=build.pk).status == "running"
    assert task.run(dry_run=False) == 1
    assert Build.objects.get(pk=build.pk).status == "queued"


def test_selectors_report_depth_running_and_timeline():
    """Queue depth per priority counts claimable builds apart; running builds and a build's timeline are listed."""
    license = BuildFactory(priority=9).license
    BuildFactory(license=license, priority=9)
    waiting = BuildFactory(license=license, priority=2)
    Build.objects.filter(pk=waiting.pk).update(not_before=timezone.now() + dt.timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM get_next_build_for_worker('w')")
        claimed = cursor.fetchone()[0]
    assert selectors.queue_depth_by_priority() == [
        {"priority": 9, "queued": 1, "claimable": 1},
        {"priority": 2, "queued": 1, "claimable": 0},
    ]
    assert [b.pk for b in selectors.builds_running()] == [claimed]
    assert [row["what"] for row in selectors.build_timeline(build=Build.objects.get(pk=claimed))] == ["claimed"]
    assert selectors.builds_active(customer=license.customer).count() == 3
