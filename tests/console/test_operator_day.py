"""The operator's day in a real browser (Debian's Chromium through Playwright): log in, find a failed build by
its error text, read its log tail, retry it from its page after a confirmation, pause claiming for a customer and
see it on the dashboard, change the dashboard's range and pause its refresh, and never be offered a change beyond
cancel, retry, priority and pausing or resuming claims. Every page is
screenshotted under test-output/operator-day/ and each screenshot checked non-empty."""

from urllib.parse import quote

import pytest

from builds.models import Build, BuildResult, ClaimPause
from console.roles import OPERATORS
from tests.console import scene
from tests.console.conftest import PASSWORD, make_user
from tests.console.factories import BuildFactory
from tests.console.test_browser import OUTPUT, chromium_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = OUTPUT / "operator-day"
ERROR = "apt-get: unable to locate package libgdal-doesnotexist"
QUEUE_ACTIONS = {
    "",
    "cancel_builds",
    "retry_builds",
    "change_priority",
    "pause_customer_claims",
    "resume_customer_claims",
    "pause_license_claims",
    "resume_license_claims",
}
# Changelists an operator looks at; none may offer an add link or an action beyond the queue's three.
LOOKED_AT = [
    "builds/build",
    "licensing/customer",
    "licensing/license",
    "licensing/registrycredential",
    "intake/conversation",
    "intake/conversationmessage",
    "builds/buildcacheentry",
    "admin/logentry",
]


@pytest.fixture
def operator_day(transactional_db):
    scene.populate()
    operator = make_user("olive-operator", group=OPERATORS)
    failed = BuildFactory(status=Build.Status.FAILED, error_message=ERROR, worker_id="host-a-0a1b2c3d/0")
    BuildResult.objects.create(
        build=failed,
        status="failed",
        worker_id="host-a-0a1b2c3d/0",
        error_message=ERROR,
        log="\n".join(f"log line {i}" for i in range(1, 201)),
        duration_ms=42_000,
    )
    return operator, Build.objects.get(pk=failed.pk)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000, path


def _fits_the_window(page) -> bool:
    """Nothing wider than the 1440 px window: wide tables scroll inside the page instead of being cut off."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_operators_day(live_server, operator_day):
    """Log in, find the failed build by its error, read its log tail, retry it from its page (confirmation
    first), pause a customer, change the dashboard's range and pause it; only cancel, retry, priority and claim
    pauses are ever offered."""
    operator, failed = operator_day
    base = live_server.url
    customer = failed.customer  # read before the browser's event loop runs (no ORM inside it)
    with chromium_page() as page:
        page.goto(f"{base}/admin/login/?next=/admin/console/dashboard/")
        _shot(page, "01-login")
        page.fill("#id_username", operator.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/console/dashboard/")
        assert page.locator("svg.chart").count() == 10
        _shot(page, "02-dashboard")

        # Find the failed build by words of its error.
        page.goto(f"{base}/admin/builds/build/")
        page.fill("#searchbar", "unable to locate libgdal-doesnotexist")
        page.press("#searchbar", "Enter")
        page.wait_for_url("**q=*")
        rows = page.locator("#result_list tbody tr")
        assert rows.count() == 1
        assert f"#{failed.build_number}" in rows.first.inner_text()
        assert _fits_the_window(page)
        _shot(page, "03-search-by-error")

        # Its page: the attempt's error and the last lines of its log.
        rows.first.locator(f"a:has-text('#{failed.build_number}')").click()
        page.wait_for_selector("pre.build-log-tail")
        tail = page.inner_text("pre.build-log-tail")
        assert "log line 200" in tail and "log line 161" in tail and "log line 160\n" not in tail
        assert ERROR in page.inner_text("table.build-attempts")
        assert page.locator("input[type=submit]").count() == 0  # no save button: nothing to edit
        offered = page.locator("a.build-operation").evaluate_all("els => els.map(e => e.dataset.operation)")
        assert offered == ["retry"]
        assert _fits_the_window(page)
        _shot(page, "04-build-page")

        # Retry from the page: a confirmation first, then the build is queued again.
        page.click("a.build-operation[data-operation=retry]")
        page.wait_for_selector("#confirm-operation")
        _shot(page, "05-confirm-retry")
        page.click("#confirm-operation input[type=submit]")
        page.wait_for_selector("ul.messagelist li.success")
        assert "queued again" in page.inner_text("ul.messagelist")
        _shot(page, "06-retried")

        # Pause a customer: from the customer list; the dashboard then lists the pause and since when.
        page.goto(f"{base}/admin/licensing/customer/?q={quote(customer.name)}")
        page.locator(f"#result_list input[name=_selected_action][value='{customer.pk}']").check()
        page.select_option("select[name=action]", "pause_customer_claims")
        page.click("button[name=index]")
        page.wait_for_selector("ul.messagelist li")
        assert "1 customer(s) paused" in page.inner_text("ul.messagelist")
        _shot(page, "07-customer-paused")
        page.goto(f"{base}/admin/console/dashboard/")
        pauses = page.inner_text("#claim-pauses")
        assert customer.name in pauses and operator.username in pauses
        _shot(page, "08-dashboard-pauses")

        # The dashboard's range: the last hour, then 7 days; the refresh can be paused.
        page.goto(f"{base}/admin/console/dashboard/")
        page.click("a.range[data-range='1h']")
        page.wait_for_url("**range=1h*")
        assert "finished, last hour" in page.inner_text(".tiles").lower()
        page.click("a.range[data-range='7d']")
        page.wait_for_url("**range=7d*")
        assert "finished, 7 days" in page.inner_text(".tiles").lower()
        page.wait_for_selector("#console[data-refreshed]")  # the panels were re-fetched in place
        page.click("#live-toggle")
        assert page.get_attribute("#console", "data-paused") == "true"
        assert "paused" in page.inner_text("#live-status")
        _shot(page, "09-dashboard-7d-paused")

        page.goto(f"{base}/admin/console/workers/")
        _shot(page, "10-workers")

        # Nothing that changes data beyond the queue's three operations is offered anywhere looked at.
        for path in LOOKED_AT:
            page.goto(f"{base}/admin/{path}/")
            assert page.locator("a.addlink").count() == 0, path
            actions = page.locator("select[name=action] option").evaluate_all("els => els.map(e => e.value)")
            assert set(actions) <= QUEUE_ACTIONS, (path, actions)
            assert _fits_the_window(page), path
        _shot(page, "11-builds-list")

    failed.refresh_from_db()
    assert failed.status == Build.Status.QUEUED
    assert ClaimPause.objects.filter(scope="customer", target_id=failed.customer_id).exists()
