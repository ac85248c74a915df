"""The read-only admin of maintenance runs."""

import uuid

import pytest
from django.utils import timezone

from honua.models import MaintenanceRun


def _run(task: str, outcome: str, minutes_ago: int) -> MaintenanceRun:
    return MaintenanceRun.objects.create(
        run_id=uuid.uuid4(),
        schedule="hourly",
        task=task,
        outcome=outcome,
        rows=1,
        started_at=timezone.now() - timezone.timedelta(minutes=minutes_ago),
        duration_ms=5,
        error="" if outcome == "succeeded" else "RuntimeError: boom",
    )


@pytest.mark.django_db
def test_maintenance_runs_list_shows_when_each_task_last_succeeded(admin_client, django_assert_max_num_queries):
    """The changelist lists runs with each task's last success, in a fixed number of queries (none per row)."""
    for minutes in range(40):
        _run("handle_build_timeouts", "succeeded" if minutes else "failed", minutes)
    with django_assert_max_num_queries(12):
        response = admin_client.get("/admin/honua/maintenancerun/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "handle_build_timeouts" in content and "✘ failed" in content and "✔ succeeded" in content


@pytest.mark.django_db
def test_maintenance_runs_cannot_be_added_changed_or_deleted(admin_client):
    """Run records are history: the admin offers no add, change or delete."""
    run = _run("x", "succeeded", 1)
    assert admin_client.get("/admin/honua/maintenancerun/add/").status_code == 403
    assert admin_client.post(f"/admin/honua/maintenancerun/{run.pk}/delete/").status_code == 403
    MaintenanceRun.objects.get(pk=run.pk)
