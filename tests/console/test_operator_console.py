"""Console v2: the whole dashboard live, charts over a chosen range and customer, workers, quiet 403s, the
favicon, searchable messages, and the smaller fixes a new operator hit."""

import datetime as dt
import logging
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from builds.models import Build
from console import charts, selectors
from console.templatetags.humanize_console import seconds
from tests.console.conftest import make_user
from tests.console.factories import BuildFactory, BuildResultFactory
from tests.intake.factories import ConversationFactory, MessageFactory
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:console_dashboard"


def _result(*, status="succeeded", minutes_ago=10, wait_ms=1000, customer_license=None, worker="host-a-0123abcd/0"):
    build = BuildFactory(license=customer_license or LicenseFactory(), status=status, worker_id=worker)
    return BuildResultFactory(
        build=build,
        status=status,
        worker_id=worker,
        queue_wait_ms=wait_ms,
        created_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
    )


def test_dashboard_panels_refresh_as_a_whole_including_finished_and_success_rate(operator_client):
    """The panels' fragment (what the page re-fetches every few seconds) carries the finished count and the
    success rate, so builds finished since the page loaded show without a reload."""
    _result()
    fragment = operator_client.get(reverse(DASHBOARD) + "?partial=1").content.decode()
    assert "<html" not in fragment
    assert 'id="tile-finished">1<' in fragment and 'id="tile-success-rate">100.0%<' in fragment
    _result(status="failed")
    fragment = operator_client.get(reverse(DASHBOARD) + "?partial=1").content.decode()
    assert 'id="tile-finished">2<' in fragment and 'id="tile-success-rate">50.0%<' in fragment
    page = operator_client.get(reverse(DASHBOARD)).content.decode()
    assert 'id="live-toggle"' in page and "data-partial-url=" in page


def test_range_and_customer_choose_the_build_charts(operator_client):
    """?range= picks the buckets (12 of 5 minutes for the last hour, 30 days...); ?customer= narrows to one."""
    mine, other = LicenseFactory(), LicenseFactory()
    _result(customer_license=mine, minutes_ago=20)
    _result(customer_license=other, minutes_ago=20)
    _result(customer_license=mine, minutes_ago=3 * 60)
    hour = selectors.build_activity("1h")
    assert len(hour.buckets) == 12 and hour.finished == 2
    assert selectors.build_activity("24h").finished == 3
    assert selectors.build_activity("30d", customer_id=mine.customer_id).finished == 2
    assert len(selectors.build_activity("7d").buckets) == 28
    html = operator_client.get(reverse(DASHBOARD) + f"?range=1h&customer={mine.customer_id}").content.decode()
    assert "Finished, last hour" in html and 'id="tile-finished">1<' in html
    assert operator_client.get(reverse(DASHBOARD) + "?range=nonsense&customer=bad").status_code == 200


def test_queue_wait_percentiles_per_bucket_and_over_the_range():
    """Queue wait p50 and p95 come from the attempts' queue_wait_ms, per bucket and over the whole range."""
    for wait in (1000, 2000, 3000, 4000, 100_000):
        _result(wait_ms=wait, minutes_ago=0)
    activity = selectors.build_activity("1h")
    assert activity.total_wait_p50_s == 3.0
    assert [v for v in activity.wait_p50_s if v is not None] == [3.0]  # one bucket holds them all
    assert 70 < activity.total_wait_p95_s < 100


def test_count_charts_have_axis_titles_and_whole_number_ticks():
    """A chart of counts names its axes and never puts a tick between two whole numbers (1 build: 0, 1, 2)."""
    svg = charts.bar_chart(
        ["a", "b"], [charts.Series("n", [1, 0], "s-ok")], title="T", integer=True, x_label="priority", y_label="builds"
    )
    ticks = [t.split(">")[-1] for t in svg.split("</text>") if 'class="axis"' in t]
    assert "priority" in svg and "builds" in svg
    assert ticks == ["0", "1", "2", "a", "b"]
    svg = charts.bar_chart(["a"], [charts.Series("n", [4], "s-ok")], title="T", integer=True)
    assert [t.split(">")[-1] for t in svg.split("</text>") if 'class="axis"' in t] == ["0", "5", "a"]


def test_short_durations_are_not_rounded_to_zero():
    """An average build of 35 ms reads "35 ms", not "0.0 s"."""
    assert seconds(35) == "35 ms" and seconds(4200) == "4.2 s" and seconds(None) == "-"


def test_workers_page_lists_recent_workers_with_host_held_done_and_failed(operator_client):
    """Every worker seen in the last hour, with its host (from the reference worker's id), the builds it holds,
    and its builds done and failed in the hour; an old one is not listed."""
    BuildFactory(running=True, worker_id="build-host-1-0a1b2c3d/0")
    _result(worker="build-host-1-0a1b2c3d/0", minutes_ago=5)
    _result(worker="build-host-1-0a1b2c3d/0", minutes_ago=7, status="failed")
    _result(worker="old-host-ffffffff/1", minutes_ago=300)
    workers = {w.worker_id: w for w in selectors.workers()}
    assert set(workers) == {"build-host-1-0a1b2c3d/0"}
    worker = workers["build-host-1-0a1b2c3d/0"]
    assert (worker.host, worker.slot, worker.held, worker.done_last_hour, worker.failed_last_hour) == (
        "build-host-1",
        "0",
        1,
        1,
        1,
    )
    html = operator_client.get(reverse("admin:console_workers")).content.decode()
    assert "build-host-1-0a1b2c3d/0" in html and "old-host" not in html
    assert reverse("admin:console_workers") in operator_client.get(reverse("admin:index")).content.decode()


@pytest.mark.parametrize("page", ["admin:console_running", "admin:console_workers"])
def test_the_queue_pages_refuse_staff_who_may_not_view_builds(client, page):
    """The running-builds and workers pages answer 403 to staff without permission to view builds."""
    client.force_login(make_user("nobody", staff=True))
    assert client.get(reverse(page)).status_code == 403


def test_permission_refusal_is_logged_on_one_line_without_traceback(client, caplog):
    """A 403 from PermissionDenied logs one line naming method, path and user, with no traceback."""
    client.force_login(make_user("nobody", staff=True))
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(reverse("admin:console_running")).status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    assert records[0].exc_info is None
    assert records[0].getMessage() == "permission refused: GET /admin/console/running/ (user nobody)"


def test_favicon_is_served_and_linked(operator_client):
    """/favicon.ico redirects to the console's icon, and admin pages link it."""
    response = operator_client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("console/favicon.svg")
    assert 'rel="icon"' in operator_client.get(reverse("admin:index")).content.decode()


def test_messages_list_shows_content_and_finds_messages_by_words(operator_client):
    """The messages list has a content column and full-text search (stemmed: "building" finds "builds")."""
    gdal = MessageFactory(content="Please add GDAL and builds for arm64")
    MessageFactory(content="Just a question about invoices")
    url = reverse("admin:intake_conversationmessage_changelist")
    html = operator_client.get(url).content.decode()
    assert "Please add GDAL and builds for arm64" in html and "<th" in html and "content" in html.lower()
    found = operator_client.get(url + "?q=gdal+building").context["cl"].result_list
    assert [m.pk for m in found] == [gdal.pk]


def test_message_search_uses_its_index(operator_client):
    """The message search is answered from conversation_messages_content_fts."""
    from console.admin import ConversationMessageAdmin
    from intake.models import ConversationMessage

    model_admin = ConversationMessageAdmin(ConversationMessage, None)
    queryset, _ = model_admin.get_search_results(None, ConversationMessage.objects.all(), "gdal")
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "conversation_messages_content_fts" in plan


def test_inlines_are_titled_by_what_they_show(admin_client):
    """A conversation's transcript rows are titled "user message N", never "ConversationMessage object (N)"."""
    message = MessageFactory(conversation=ConversationFactory())
    html = admin_client.get(
        reverse("admin:intake_conversation_change", args=[message.conversation_id])
    ).content.decode()
    assert "object (" not in html and f"user message {message.pk}" in html


def test_operator_viewing_a_credential_sees_no_new_secret_field(operator_client):
    """A view-only operator's credential page has no "New secret" row (it read "New secret: None")."""
    from tests.licensing.factories import RegistryCredentialFactory

    credential = RegistryCredentialFactory()
    html = operator_client.get(reverse("admin:licensing_registrycredential_change", args=[credential.pk]))
    assert html.status_code == 200
    assert "New secret" not in html.content.decode() and "None" not in html.content.decode()


def test_rejected_credential_add_form_never_echoes_the_secret(admin_client):
    """An add form rejected for another field (bad expiry) shows the error but not the secret it was sent."""
    customer = LicenseFactory(tier="pro").customer
    secret = "dckr_pat_never_echo_41f9"
    response = admin_client.post(
        reverse("admin:licensing_registrycredential_add"),
        {
            "customer": customer.pk,
            "registry_type": "dockerhub",
            "registry_url": "https://index.docker.io/v1/",
            "username": "bot",
            "secret": secret,
            "expires_at_0": "2001-01-01",
            "expires_at_1": "00:00:00",
        },
    )
    assert response.status_code == 200 and "errornote" in response.content.decode()
    assert secret not in response.content.decode()


def test_ensure_admin_keeps_an_existing_password_and_says_how_to_reset(db):
    """A second `ensure_admin` (a second `make demo`) keeps the admin's password and says how to set a new one;
    --reset-password sets and prints a new one."""
    first = StringIO()
    call_command("ensure_admin", stdout=first)
    password = first.getvalue().split("password ")[-1].strip().strip("'")
    second = StringIO()
    call_command("ensure_admin", stdout=second)
    admin = get_user_model().objects.get(username="admin")
    assert admin.check_password(password)
    assert "unchanged" in second.getvalue() and "--reset-password" in second.getvalue()
    third = StringIO()
    call_command("ensure_admin", "--reset-password", stdout=third)
    admin.refresh_from_db()
    assert not admin.check_password(password) and "password reset" in third.getvalue()


def test_build_numbers_name_running_builds_on_the_console(operator_client):
    """The running builds page names each build by its number, and two builds never share it."""
    first, second = BuildFactory(running=True), BuildFactory(running=True)
    html = operator_client.get(reverse("admin:console_running")).content.decode()
    numbers = {Build.objects.get(pk=b.pk).build_number for b in (first, second)}
    assert len(numbers) == 2
    for number in numbers:
        assert f"#{number}" in html


def test_archived_cache_accesses_are_spelled_right(operator_client):
    """The admin index names the access-log archive "Archived cache accesses" (it read "accesss")."""
    html = operator_client.get(reverse("admin:index")).content.decode()
    assert "Archived cache accesses" in html and "accesss" not in html


def test_thirty_day_panels_are_kept_for_a_minute_but_build_figures_are_not(operator_client):
    """The panels' refresh re-reads live build figures every time but the 30-day cache and conversation
    figures at most once a minute, so polling does not re-scan a month of the access log every few seconds."""
    url = reverse(DASHBOARD) + "?partial=1"
    operator_client.get(url)
    with CaptureQueriesContext(connection) as queries:
        operator_client.get(url)
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "build_access_log" not in sql and "conversations" not in sql
    assert "build_activity_hourly_figures" in sql  # the 24-hour build figures: today's results, read live
