"""The dashboard page, the running-builds page and every admin changelist: they render, and each in a fixed,
small number of queries whatever the data volume."""

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from builds.models import Build
from tests.console.conftest import make_user
from tests.console.factories import (
    AccessLogFactory,
    BuildFactory,
    BuildResultFactory,
    CacheEntryFactory,
    ConversationFactory,
)
from tests.licensing.factories import LicenseFactory

DASHBOARD_MAX_QUERIES = 17  # issue 17 added one: the unpriced-message count
CHANGELIST_MAX_QUERIES = 12


def _some_of_everything(n: int = 6) -> None:
    """A few rows of every kind, so that a query per row would show in the counts."""
    for _ in range(n):
        license = LicenseFactory()
        BuildFactory(license=license)
        BuildFactory(license=license, running=True)
        BuildResultFactory(build__license=license)
        entry = CacheEntryFactory(owner=license.customer)
        AccessLogFactory(hit=True, cache_entry_id=entry.pk, customer_id=license.customer_id)
        ConversationFactory(customer=license.customer, satisfaction_score=4)
        build = Build.objects.filter(license=license).first()
        LogEntry.objects.create(
            user=make_user(f"u{license.pk.hex[:8]}"),
            content_type=ContentType.objects.get_for_model(Build),
            object_id=str(build.pk),
            object_repr=str(build),
            action_flag=CHANGE,
            change_message="test",
        )


@pytest.mark.django_db
def test_dashboard_renders_every_panel_with_svg_charts_for_an_operator(operator_client):
    """An operator sees every panel; the charts are inline SVG with bars and lines."""
    _some_of_everything(2)
    response = operator_client.get(reverse("admin:console_dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<svg class="chart"') == 10
    assert '<rect class="bar' in html and '<polyline class="line' in html
    for heading in [
        "Queue depth",
        "Running builds",
        "Cache hit rate",
        "Closest to their monthly quota",
        "Licenses expiring within 14 days",
        "Conversations, 30 days",
        "Maintenance",
    ]:
        assert heading in html
    assert 'data-live-url="/admin/console/live.json"' in html


@pytest.mark.django_db
def test_dashboard_hides_panels_whose_data_the_user_may_not_view(client):
    """A staff user with no view permission gets the page but no figures."""
    client.force_login(make_user("sam-staff"))
    _some_of_everything(1)
    html = client.get(reverse("admin:console_dashboard")).content.decode()
    assert "may not view any of the dashboard" in html
    assert '<svg class="chart"' not in html


@pytest.mark.django_db
def test_admin_index_links_the_dashboard(operator_client):
    """The admin index lists the operator console with its two pages."""
    html = operator_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:console_dashboard") in html and reverse("admin:console_running") in html


@pytest.mark.django_db
def test_running_builds_page_lists_running_builds_with_progress(operator_client):
    """The running-builds page shows each running build with a progress bar, and polls the live endpoint."""
    build = BuildFactory(running=True, progress=63)
    html = operator_client.get(reverse("admin:console_running")).content.decode()
    assert f"#{build.build_number}" in html and '<progress max="100" value="63">' in html
    assert "console/console.js" in html


@pytest.mark.django_db
def test_dashboard_query_count_does_not_grow_with_the_data(operator_client, django_assert_max_num_queries):
    """The dashboard takes at most DASHBOARD_MAX_QUERIES queries, with a little data or more."""
    _some_of_everything(2)
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
        assert operator_client.get(reverse("admin:console_dashboard")).status_code == 200
    _some_of_everything(6)
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
        assert operator_client.get(reverse("admin:console_dashboard")).status_code == 200


@pytest.mark.django_db
def test_live_endpoint_query_count(operator_client, django_assert_max_num_queries):
    """The polled endpoint is cheap: session, user, permissions, queue depth and running builds."""
    _some_of_everything(4)
    with django_assert_max_num_queries(7):
        assert operator_client.get(reverse("admin:console_live")).status_code == 200


def _changelists():
    return sorted((f"{model._meta.app_label}.{model._meta.model_name}", model) for model in admin.site._registry)


@pytest.mark.django_db
@pytest.mark.parametrize(("label", "model"), _changelists(), ids=[label for label, _ in _changelists()])
def test_every_changelist_in_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries, label, model):
    """Every registered changelist renders in at most CHANGELIST_MAX_QUERIES queries with rows in every table."""
    _some_of_everything(6)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    with django_assert_max_num_queries(CHANGELIST_MAX_QUERIES):
        response = admin_client.get(url)
    assert response.status_code == 200, label
