"""The license admin's quota columns, which builds.queue.quota_admin adds to licensing's admin."""

import pytest
from django.urls import reverse

from builds.queue import services
from licensing.models import License
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db


def test_license_change_page_shows_this_months_quota_use(admin_client):
    """The change page says how many of the month's builds are used, after "features", as before the move."""
    license = LicenseFactory(tier="core")
    services.build_enqueue(customer=license.customer, manifest={"base": "python:3.12-slim", "packages": ["x"]})
    page = admin_client.get(reverse("admin:licensing_license_change", args=[license.pk])).content.decode()
    assert "1 of 50 builds used, 49 left" in page
    assert page.index("Features") < page.index("This month") < page.index("Created at")


def test_license_list_keeps_the_quota_columns_after_is_trial():
    """The list columns stand where licensing's admin had them: quota used and remaining after "is trial"."""
    from django.contrib import admin

    names = list(admin.site._registry[License].list_display)
    assert names[names.index("is_trial") + 1 : names.index("is_trial") + 3] == ["quota_used", "quota_remaining"]
