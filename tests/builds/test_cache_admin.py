"""The cache admin: entry list with live counts and filters, the evict action, and the read-only access log."""

import pytest
from django.urls import reverse

from builds.models import Build, BuildCacheEntry
from tests.builds.cache_factories import cached, lookup, sha
from tests.licensing.factories import LicenseFactory


@pytest.mark.django_db
def test_entry_list_shows_live_hits_and_filters(admin_client, django_assert_max_num_queries):
    """The entry list shows unfolded hits, and filters by visibility, tier and idle age, in few queries."""
    shared = cached(LicenseFactory(tier="enterprise"))
    private = cached(LicenseFactory(tier="core"))
    for _ in range(3):
        lookup(shared.manifest_hash, shared.owner_id)
    for _ in range(10):
        cached(LicenseFactory(tier="pro"))
    url = reverse("admin:builds_buildcacheentry_changelist")
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200
    rows = {entry.pk: entry for entry in response.context["cl"].result_list}
    assert rows[shared.pk].live_hit_count == 3 and rows[private.pk].live_hit_count == 0

    def listed(query):
        return {e.pk for e in admin_client.get(url + query).context["cl"].result_list}

    assert listed("?visibility=shared") == {shared.pk}
    assert listed("?tier=core") == {private.pk}
    assert shared.pk not in listed("?idle=1d") and listed("?idle=90d") == set()
    assert listed(f"?q={shared.manifest_hash[:10]}") == {shared.pk}


@pytest.mark.django_db
def test_evict_action_skips_entries_in_use(admin_client):
    """The evict action soft-deletes the selected entries, except one a queued build depends on."""
    free, busy = cached(LicenseFactory(tier="core")), cached(LicenseFactory(tier="core"))
    license = LicenseFactory(tier="core")
    Build.objects.create(customer=license.customer, license=license, manifest={}, manifest_hash=busy.manifest_hash)
    response = admin_client.post(
        reverse("admin:builds_buildcacheentry_changelist"),
        {"action": "evict", "_selected_action": [str(free.pk), str(busy.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Evicted 1 cache entries." in text and "Kept 1 in use" in text
    assert BuildCacheEntry.objects.get(pk=free.pk).deleted_at is not None
    assert BuildCacheEntry.objects.get(pk=busy.pk).deleted_at is None


@pytest.mark.django_db
def test_access_log_is_read_only_and_filterable(admin_client):
    """The access log lists lookups with the customer's name, filters by hit and customer, and cannot be edited."""
    entry = cached(LicenseFactory(tier="core"))
    other = LicenseFactory(tier="pro")
    lookup(entry.manifest_hash, entry.owner_id)
    lookup(sha("miss"), other.customer_id)
    url = reverse("admin:builds_buildaccesslog_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200 and entry.owner.name in response.content.decode()
    assert [r.hit for r in admin_client.get(url + "?hit__exact=0").context["cl"].result_list] == [False]
    only = admin_client.get(url + f"?customer={other.customer_id}").context["cl"].result_list
    assert [r.customer_id for r in only] == [other.customer_id]
    assert [r.customer_id for r in admin_client.get(url + f"?q={other.customer_id}").context["cl"].result_list] == [
        other.customer_id
    ]
    row = only[0]
    assert admin_client.get(reverse("admin:builds_buildaccesslog_change", args=[row.pk])).status_code == 200
    assert admin_client.post(reverse("admin:builds_buildaccesslog_delete", args=[row.pk])).status_code == 403
    assert admin_client.get(reverse("admin:builds_buildaccesslog_add")).status_code == 403


@pytest.mark.django_db
def test_entry_detail_is_read_only_and_adding_is_not_offered(admin_client):
    """An entry's page opens read-only; entries cannot be added by hand (they come from builds)."""
    entry = cached(LicenseFactory(tier="core"))
    response = admin_client.get(reverse("admin:builds_buildcacheentry_change", args=[entry.pk]))
    assert response.status_code == 200 and entry.manifest_hash in response.content.decode()
    assert admin_client.get(reverse("admin:builds_buildcacheentry_add")).status_code == 403


@pytest.mark.django_db
def test_statistics_admin_lists_overall_and_customers(admin_client):
    """The cache statistics page shows the overall row and each customer's hit rate, read-only."""
    entry = cached(LicenseFactory(tier="core"))
    lookup(entry.manifest_hash, entry.owner_id)
    lookup(sha("miss"), entry.owner_id)
    response = admin_client.get(reverse("admin:builds_cachestatistics_changelist"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "(all customers)" in text and entry.owner.name in text and "50.0%" in text
    rows = {row.id: row for row in response.context["cl"].result_list}
    assert (rows["overall"].hits, rows[str(entry.owner_id)].misses) == (1, 1)
    assert admin_client.get(reverse("admin:builds_cachestatistics_add")).status_code == 403


@pytest.mark.django_db
def test_statistics_admin_filters_by_scope(admin_client):
    """The scope filter lists both scopes and narrows the page to the overall row or the customers' rows."""
    entry = cached(LicenseFactory(tier="core"))
    lookup(entry.manifest_hash, entry.owner_id)
    url = reverse("admin:builds_cachestatistics_changelist")
    overall = admin_client.get(url, {"scope__exact": "overall"})
    assert [row.id for row in overall.context["cl"].result_list] == ["overall"]
    customers = admin_client.get(url, {"scope__exact": "customer"})
    assert [row.id for row in customers.context["cl"].result_list] == [str(entry.owner_id)]
    assert "?scope__exact=customer" in overall.content.decode()
