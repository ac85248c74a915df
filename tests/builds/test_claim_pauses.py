"""Pause and drain (issue 16): paused work stays queued and is never claimed, everything else is claimed as before,
running builds finish, resuming wakes idle workers; bad input gets its code and changes nothing."""

import json
import uuid

import psycopg
import pytest

from builds.models import Build, BuildLicenseState, BuildMemberState, ClaimPause
from builds.queue import services
from honua import errors
from tests.conftest import database_url, raises_sqlstate, sql_rows
from tests.licensing.factories import CustomerFactory, LicenseFactory

DIGEST = "sha256:" + "c" * 64
REF = "registry.example/team/app:1"

pytestmark = pytest.mark.django_db


def _license(**overrides):
    overrides.setdefault("monthly_build_quota_override", 100_000)
    overrides.setdefault("max_concurrent_builds_override", 50)
    return LicenseFactory(tier="asp", **overrides)


def _enqueue(customer, count, tag="b"):
    rows = sql_rows(
        "SELECT enqueue_build(%s, jsonb_build_object('tag', %s::text, 'n', g), 5) FROM generate_series(1, %s) g",
        [customer.pk, tag, count],
    )
    return [row[0] for row in rows]


def _claim_all(limit=100):
    return [row[0] for row in sql_rows("SELECT id FROM claim_builds('w', %s)", [limit])]


def test_a_paused_license_is_not_claimed_while_others_are():
    """A license's pause keeps its builds queued; every other license's builds are claimed (work-conserving)."""
    paused, other = _license(), _license()
    held = _enqueue(paused.customer, 3, "p")
    free = _enqueue(other.customer, 3, "o")
    services.claims_pause(scope="license", target=paused, reason="maintenance", paused_by="olive")
    assert sorted(_claim_all()) == sorted(free)
    assert set(Build.objects.filter(pk__in=held).values_list("status", flat=True)) == {"queued"}
    assert BuildLicenseState.objects.get(license=paused).paused


def test_a_paused_customer_is_not_claimed_while_its_family_and_others_are():
    """A customer's pause holds its own builds; its sub-customer under the same license and other customers are
    claimed."""
    parent_license = _license()
    parent = parent_license.customer
    child = CustomerFactory(parent=parent)
    other = _license()
    held = _enqueue(parent, 3, "p")
    family = _enqueue(child, 2, "c")
    others = _enqueue(other.customer, 2, "o")
    services.claims_pause(scope="customer", target=parent)
    assert sorted(_claim_all()) == sorted(family + others)
    assert set(Build.objects.filter(pk__in=held).values_list("status", flat=True)) == {"queued"}


def test_a_pause_set_before_the_state_rows_exist_still_holds():
    """Pausing a license and a customer that never queued anything: their first builds are not claimed (the
    state rows created later copy the pause)."""
    lic, cust_lic = _license(), _license()
    services.claims_pause(scope="license", target=lic)
    services.claims_pause(scope="customer", target=cust_lic.customer)
    _enqueue(lic.customer, 2, "l")
    _enqueue(cust_lic.customer, 2, "c")
    assert _claim_all() == []
    assert BuildMemberState.objects.get(customer_id=cust_lic.customer.pk).paused


def test_a_global_pause_claims_nothing_and_resume_claims_again():
    """Globally paused, no build is claimed by either claim function; after resume they all are."""
    lic = _license()
    ids = _enqueue(lic.customer, 3)
    services.claims_pause(scope="global")
    assert _claim_all() == []
    assert sql_rows("SELECT id FROM get_next_build_for_worker('w')") == []
    assert services.claims_resume(scope="global") is True
    assert sorted(_claim_all()) == sorted(ids)
    assert not ClaimPause.objects.exists()


def test_resume_of_a_customer_and_a_license_makes_their_builds_claimable():
    """Resuming removes the pause and clears the flags: the held builds are claimed."""
    lic = _license()
    ids = _enqueue(lic.customer, 2)
    services.claims_pause(scope="license", target=lic)
    services.claims_pause(scope="customer", target=lic.customer)
    assert _claim_all() == []
    assert services.claims_resume(scope="license", target=lic)
    assert _claim_all() == []  # the customer is still paused
    assert services.claims_resume(scope="customer", target=lic.customer.pk)
    assert sorted(_claim_all()) == sorted(ids)
    assert services.claims_resume(scope="customer", target=lic.customer.pk) is False


def test_running_builds_complete_during_a_pause():
    """Drain: a build claimed before the pause completes normally while claiming is paused."""
    lic = _license()
    first, _second = _enqueue(lic.customer, 2)
    assert _claim_all(1) == [first]
    services.claims_pause(scope="global")
    services.claims_pause(scope="license", target=lic)
    assert sql_rows("SELECT complete_build(%s, 'w', true, %s, %s, NULL)", [first, REF, DIGEST])[0][0] is True
    assert Build.objects.get(pk=first).status == "succeeded"
    assert _claim_all() == []


def test_pausing_twice_keeps_the_first_pause():
    """A second pause of the same target changes nothing: one row, the first time, author and reason."""
    lic = _license()
    first = services.claims_pause(scope="license", target=lic, reason="first", paused_by="a")
    second = services.claims_pause(scope="license", target=lic, reason="second", paused_by="b")
    assert (second.pk, second.paused_at, second.reason, second.paused_by) == (
        first.pk,
        first.paused_at,
        "first",
        "a",
    )
    assert ClaimPause.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_resume_wakes_idle_workers():
    """resume_claims sends a "resume" NOTIFY on build_queue (with the license for a license's pause)."""
    lic = _license()
    with psycopg.connect(database_url(), autocommit=True) as listener:
        listener.execute("LISTEN build_queue")
        list(listener.notifies(timeout=0.2))
        services.claims_pause(scope="license", target=lic)
        services.claims_resume(scope="license", target=lic)
        services.claims_pause(scope="global")
        services.claims_resume(scope="global")
        events = [json.loads(n.payload) for n in listener.notifies(timeout=1)]
    assert {"event": "resume", "license": str(lic.pk)} in events
    assert {"event": "resume"} in events


@pytest.mark.parametrize(
    ("query", "params", "code"),
    [
        ("SELECT pause_claims(NULL)", [], "HN001"),
        ("SELECT pause_claims('tenant', %s)", [uuid.uuid4()], "HN001"),
        ("SELECT pause_claims('global', %s)", [uuid.uuid4()], "HN001"),
        ("SELECT pause_claims('customer')", [], "HN001"),
        ("SELECT pause_claims('license', NULL)", [], "HN001"),
        ("SELECT pause_claims('global', NULL, repeat('x', 501))", [], "HN001"),
        ("SELECT pause_claims('customer', %s)", [uuid.uuid4()], "HN101"),
        ("SELECT pause_claims('license', %s)", [uuid.uuid4()], "HN102"),
        ("SELECT resume_claims('everything')", [], "HN001"),
        ("SELECT resume_claims('license')", [], "HN001"),
        ("SELECT resume_claims('customer', %s)", [uuid.uuid4()], "HN101"),
        ("SELECT resume_claims('license', %s)", [uuid.uuid4()], "HN102"),
    ],
)
def test_bad_input_gets_its_code_and_changes_nothing(query, params, code):
    """Each bad call raises its HN code and leaves no pause behind."""
    with raises_sqlstate(code):
        sql_rows(query, params)
    assert not ClaimPause.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "exception"),
    [
        ({"scope": "tenant"}, errors.InvalidArgument),
        ({"scope": "global", "target": uuid.uuid4()}, errors.InvalidArgument),
        ({"scope": "license"}, errors.InvalidArgument),
        ({"scope": "license", "target": "not-a-uuid"}, errors.InvalidArgument),
        ({"scope": "customer", "target": uuid.uuid4()}, errors.CustomerNotFound),
        ({"scope": "license", "target": uuid.uuid4()}, errors.LicenseNotFound),
    ],
)
def test_the_service_raises_the_matching_exception(kwargs, exception):
    """claims_pause checks its input first and maps the database's codes to honua.errors; nothing is paused."""
    with pytest.raises(exception):
        services.claims_pause(**kwargs)
    assert not ClaimPause.objects.exists()
