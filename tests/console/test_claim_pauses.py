"""Pause and drain on the dashboard: what is paused and since when, the global pause and resume (permission,
admin log entry), and the customer pause as operators run it from the customer list."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from builds.models import ClaimPause
from builds.queue import services
from tests.console.conftest import make_user
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:console_dashboard"
CLAIMS = "admin:console_claims"


def test_the_dashboard_shows_what_is_paused_and_since_when(client):
    """A customer's pause appears on the dashboard (and its refreshed panels) with the customer's name, the time,
    who paused it and why."""
    client.force_login(make_user("olive", group="operators"))
    customer = LicenseFactory().customer
    pause = services.claims_pause(scope="customer", target=customer, reason="flooding", paused_by="olive")
    for url in (reverse(DASHBOARD), reverse(DASHBOARD) + "?partial=1"):
        html = client.get(url).content.decode()
        assert 'id="claim-pauses"' in html
        assert customer.name in html and "flooding" in html
        assert pause.paused_at.strftime("%Y-%m-%d %H:%M:%S") in html


def test_nothing_paused_says_so(client):
    """With no pause the panel says every customer's builds are claimed, and offers the global pause."""
    client.force_login(make_user("olive", group="operators"))
    html = client.get(reverse(DASHBOARD)).content.decode()
    assert "Nothing is paused" in html and "Pause all claiming" in html


def test_an_operator_pauses_and_resumes_all_claiming_and_each_is_logged(client):
    """Operators pause and resume all claiming from the dashboard; each change writes one admin log entry."""
    operator = make_user("olive", group="operators")
    client.force_login(operator)
    assert client.post(reverse(CLAIMS), {"action": "pause", "reason": "registry down"}).status_code == 302
    pause = ClaimPause.objects.get(scope="global")
    assert (pause.paused_by, pause.reason) == ("olive", "registry down")
    assert "Resume all claiming" in client.get(reverse(DASHBOARD)).content.decode()
    client.post(reverse(CLAIMS), {"action": "pause"})  # already paused: no change, no entry
    assert client.post(reverse(CLAIMS), {"action": "resume"}).status_code == 302
    assert not ClaimPause.objects.exists()
    entries = list(LogEntry.objects.filter(user=operator).order_by("pk").values_list("change_message", flat=True))
    assert entries == ["Pause all claiming.", "Resume all claiming."]


def test_staff_without_the_permission_may_not_pause(client):
    """Staff without builds.pause_claims get a 403, nothing is paused and nothing is logged; GET is refused."""
    client.force_login(make_user("sam"))
    assert client.post(reverse(CLAIMS), {"action": "pause"}).status_code == 403
    client.force_login(make_user("olive", group="operators"))
    assert client.get(reverse(CLAIMS)).status_code == 405
    assert not ClaimPause.objects.exists() and not LogEntry.objects.exists()


def test_an_operator_pauses_a_customer_from_the_customer_list(client):
    """The customer list's pause action pauses claiming for the selected customer and logs it; resume undoes it."""
    operator = make_user("olive", group="operators")
    client.force_login(operator)
    customer = LicenseFactory().customer
    url = reverse("admin:licensing_customer_changelist")
    client.post(url, {"action": "pause_customer_claims", "_selected_action": [str(customer.pk)]})
    pause = ClaimPause.objects.get(scope="customer", target_id=customer.pk)
    assert pause.paused_by == "olive"
    client.post(url, {"action": "resume_customer_claims", "_selected_action": [str(customer.pk)]})
    assert not ClaimPause.objects.exists()
    assert LogEntry.objects.filter(user=operator, object_id=str(customer.pk)).count() == 2
