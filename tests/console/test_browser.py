"""A real browser (Debian's Chromium, driven by Playwright) as an operator: dashboard, live refresh, cancel."""

import contextlib
import os

import pytest

from builds.models import Build
from console.roles import OPERATORS
from tests.conftest import PROJECT_ROOT
from tests.console import scene
from tests.console.conftest import PASSWORD, make_user
from tests.console.factories import BuildFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = PROJECT_ROOT / "test-output"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@contextlib.contextmanager
def chromium_page():
    """A page in Debian's Chromium. Playwright runs an event loop while it is open, so Django's ORM (which
    refuses to run inside one) is used only before and after this block."""
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: run scripts/ensure-chromium (as root)"
        if os.environ.get("CI"):  # CI installs it (make test runs scripts/ensure-chromium): never skip silently there
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def operator_with_data(transactional_db):
    scene.populate()
    operator = make_user("olive-operator", group=OPERATORS)
    queued = BuildFactory(priority=7)
    return operator, queued


def test_operator_sees_the_dashboard_and_cancels_a_queued_build(live_server, operator_with_data):
    """Logged in as an operator: the dashboard's charts render and refresh live; the cancel action cancels a
    queued build and the changelist shows it cancelled. A screenshot of the dashboard goes to test-output/."""
    operator, queued = operator_with_data
    with chromium_page() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/console/dashboard/")
        page.fill("#id_username", operator.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/console/dashboard/")

        charts = page.locator("svg.chart")
        assert charts.count() == 10
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 200 and box["height"] > 80
        assert page.locator("svg.chart rect.bar").count() > 50
        assert page.locator("#running-rows tr.stale").count() == 1
        page.wait_for_selector("#console[data-refreshed]")  # the live endpoint answered and the page updated
        assert "updated" in page.inner_text("#live-status")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)

        page.goto(f"{live_server.url}/admin/builds/build/?status__exact=queued")
        page.check(f"input[name=_selected_action][value='{queued.pk}']")
        page.select_option("select[name=action]", "cancel_builds")
        page.click("button[name=index]")
        page.wait_for_selector("ul.messagelist li.success")
        page.goto(f"{live_server.url}/admin/builds/build/?status__exact=cancelled&q=")
        cancelled_ids = page.locator("input[name=_selected_action]").evaluate_all("els => els.map(e => e.value)")
        assert str(queued.pk) in cancelled_ids

    queued.refresh_from_db()
    assert queued.status == Build.Status.CANCELLED
