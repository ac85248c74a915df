"""The console's selectors against hand-computed figures."""

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from builds.models import Build, BuildResult
from console import selectors
from honua.models import MaintenanceRun
from tests.console.factories import (
    AccessLogFactory,
    BuildFactory,
    BuildResultFactory,
    CacheEntryFactory,
    ConversationFactory,
)
from tests.licensing.factories import LicenseFactory


@pytest.mark.django_db
def test_queue_depth_counts_live_builds_by_status_and_priority():
    """Queued and running builds are counted per priority; finished builds are not depth."""
    BuildFactory.create_batch(2, priority=9)
    BuildFactory(priority=5)
    BuildFactory(priority=5, running=True)
    BuildFactory(priority=5, status=Build.Status.FAILED)
    BuildFactory(priority=9, not_before=timezone.now() + dt.timedelta(minutes=5))  # in retry backoff
    depth = selectors.queue_depth()
    assert (depth.queued, depth.claimable, depth.running) == (4, 3, 1)
    assert depth.by_priority[9] == {"queued": 3, "claimable": 2, "running": 0}
    assert depth.by_priority[5] == {"queued": 1, "claimable": 1, "running": 1}
    assert list(depth.by_priority) == list(range(10, 0, -1))


@pytest.mark.django_db
def test_running_builds_flags_stale_heartbeats_and_lists_them_first():
    """A running build whose heartbeat is older than its timeout is stale and comes first."""
    fresh = BuildFactory(running=True)
    stale = BuildFactory(
        running=True, heartbeat_timeout_seconds=60, heartbeat_at=timezone.now() - dt.timedelta(seconds=300)
    )
    rows = selectors.running_builds()
    assert [r.id for r in rows] == [str(stale.pk), str(fresh.pk)]
    assert [r.stale for r in rows] == [True, False]
    assert 290 < rows[0].heartbeat_age_seconds < 400
    assert rows[0].worker_id.startswith("worker-") and rows[0].stage == "compile"


@pytest.mark.django_db
def test_throughput_buckets_results_and_computes_success_rate_without_cancellations():
    """Results are counted per hour; success rate is succeeded over succeeded, failed and timed out."""
    now = timezone.now()
    win = selectors.window("hour", 24, now=now)
    for status in ["succeeded", "succeeded", "succeeded", "failed", "timed_out", "cancelled"]:
        BuildResultFactory(status=status, duration_ms=30_000)
    old = BuildResultFactory(status="failed")
    BuildResult.objects.filter(pk=old.pk).update(created_at=now - dt.timedelta(days=2))
    BuildFactory(status=Build.Status.SUCCEEDED, cache_hit=True)
    figures = selectors.throughput(win)
    assert figures.finished == 6
    assert figures.by_status["succeeded"][-1] == 3
    assert figures.success_rate == pytest.approx(3 / 5)
    assert figures.cache_hits == 1
    assert figures.average_duration_ms == pytest.approx(30_000)


@pytest.mark.django_db
def test_cache_activity_counts_hits_misses_and_time_saved_per_day():
    """Hit rate per day from the access log; each hit saves its entry's build duration."""
    entry = CacheEntryFactory(build_duration_ms=90_000)
    AccessLogFactory.create_batch(3, hit=True, cache_entry_id=entry.pk)
    AccessLogFactory(hit=False)
    activity = selectors.cache_activity(selectors.window("day", 30))
    assert (activity.hits[-1], activity.misses[-1]) == (3, 1)
    assert activity.hit_rates[-1] == pytest.approx(0.75)
    assert activity.hit_rates[0] is None
    assert activity.saved_ms[-1] == 270_000


@pytest.mark.django_db
def test_quota_usage_top_lists_the_fullest_licenses_first():
    """Licenses are ordered by the share of their monthly quota used this month."""
    nearly_full = LicenseFactory(tier="core", monthly_build_quota_override=4)
    half = LicenseFactory(tier="core", monthly_build_quota_override=4)
    LicenseFactory(tier="pro")
    BuildFactory.create_batch(3, license=nearly_full)
    BuildFactory.create_batch(2, license=half)
    rows = selectors.quota_usage_top(limit=2)
    assert [(r.license_id, r.used, r.monthly_quota, r.percent) for r in rows] == [
        (str(nearly_full.pk), 3, 4, 75),
        (str(half.pk), 2, 4, 50),
    ]


@pytest.mark.django_db
def test_licenses_expiring_within_14_days():
    """Active licenses expiring within 14 days are listed soonest first; later or inactive ones are not."""
    now = timezone.now()
    soon = LicenseFactory(is_trial=True, expires_at=now + dt.timedelta(days=3))
    later = LicenseFactory(expires_at=now + dt.timedelta(days=13))
    LicenseFactory(expires_at=now + dt.timedelta(days=20))
    LicenseFactory(status="suspended", expires_at=now + dt.timedelta(days=2))
    assert [lic.pk for lic in selectors.licenses_expiring(days=14)] == [soon.pk, later.pk]


@pytest.mark.django_db
def test_conversation_activity_sums_tokens_cost_and_averages_satisfaction():
    """Per day: conversations, prompt plus completion tokens, cost, and the average of the given scores."""
    ConversationFactory(prompt_tokens=100, completion_tokens=50, total_cost="0.50", satisfaction_score=4)
    ConversationFactory(prompt_tokens=10, completion_tokens=5, total_cost="0.25", satisfaction_score=2)
    ConversationFactory(prompt_tokens=1, completion_tokens=1, total_cost="0", satisfaction_score=None)
    activity = selectors.conversation_activity(selectors.window("day", 30))
    assert activity.conversations[-1] == 3
    assert activity.tokens[-1] == 167
    assert activity.cost[-1] == pytest.approx(0.75)
    assert activity.satisfaction[-1] == pytest.approx(3.0)
    assert activity.satisfaction[0] is None


def test_window_buckets_end_with_the_current_hour_or_day():
    """A window's last bucket is the one containing now, in UTC, and buckets are evenly spaced."""
    now = dt.datetime(2026, 3, 1, 13, 45, tzinfo=dt.UTC)
    hours = selectors.window("hour", 24, now=now)
    assert hours.buckets[-1] == dt.datetime(2026, 3, 1, 13, tzinfo=dt.UTC)
    assert hours.start == dt.datetime(2026, 2, 28, 14, tzinfo=dt.UTC)
    days = selectors.window("day", 30, now=now)
    assert days.buckets[-1] == dt.datetime(2026, 3, 1, tzinfo=dt.UTC) and len(days.buckets) == 30


@pytest.mark.django_db
def test_maintenance_status_reports_each_schedules_last_run_and_last_success():
    """The last run of a schedule is its newest run_id: failed if any of its tasks failed, naming them; the
    last success is the newest succeeded task of the schedule; a schedule never run says so."""
    now = timezone.now()
    earlier, latest = uuid.uuid4(), uuid.uuid4()

    def run(run_id, task, outcome, minutes_ago, schedule="daily"):
        MaintenanceRun.objects.create(
            run_id=run_id,
            schedule=schedule,
            task=task,
            outcome=outcome,
            rows=2,
            duration_ms=10,
            started_at=now - dt.timedelta(minutes=minutes_ago),
            error="boom" if outcome == "failed" else "",
        )

    run(earlier, "expire_licenses", "succeeded", 60 * 24)
    run(latest, "expire_licenses", "failed", 5)
    run(latest, "revoke_expired_credentials", "succeeded", 4)
    statuses = {s.schedule: s for s in selectors.maintenance_status()}
    daily = statuses["daily"]
    assert daily.last_succeeded is False and daily.failed_tasks == "expire_licenses"
    assert daily.last_started_at == now - dt.timedelta(minutes=5)
    assert (daily.last_rows, daily.last_duration_ms) == (4, 20)
    assert daily.last_success_at == now - dt.timedelta(minutes=4)
    assert statuses["monthly"].last_started_at is None and statuses["monthly"].last_succeeded is None
    assert "expire_licenses" in daily.tasks
