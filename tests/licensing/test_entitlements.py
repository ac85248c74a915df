"""Entitlements the database enforces (licensing/sql/0009_entitlements.sql): who may be a parent customer
(``sub_customers``, HN203) and the registry credential limit (``max_registries``, HN204), from plain SQL as well
as through the services, with the same messages."""

import functools
import threading
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from licensing import services
from licensing.keys import encrypt_secret
from licensing.models import (
    HAS_SUB_CUSTOMERS,
    PARENT_IS_SUB_CUSTOMER,
    PARENT_NOT_ENTITLED,
    REGISTRY_LIMIT_REACHED,
    SUB_CUSTOMERS_NEED_ENTITLEMENT,
    Customer,
    RegistryCredential,
)
from tests.conftest import run_together
from tests.licensing.factories import CustomerFactory, LicenseFactory, RegistryCredentialFactory

pytestmark = pytest.mark.django_db


def _sqlstate_error(sqlstate: str, message: str):
    """Expect a database error with ``sqlstate`` whose message is exactly ``message``."""
    return _Expect(sqlstate, message)


class _Expect:
    def __init__(self, sqlstate, message):
        self.sqlstate, self.message = sqlstate, message

    def __enter__(self):
        self._raises = pytest.raises(DatabaseError)
        self.info = self._raises.__enter__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        return self.info

    def __exit__(self, *exc):
        self._atomic.__exit__(*exc)
        suppressed = self._raises.__exit__(*exc)
        cause = self.info.value.__cause__
        assert cause.diag.sqlstate == self.sqlstate, cause
        assert cause.diag.message_primary == self.message
        return suppressed


def _set_parent_sql(customer, parent):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE customers SET parent_id = %s WHERE id = %s", [parent.pk if parent else None, customer.pk]
        )


def _insert_credential_sql(customer, url="https://r.example"):
    credential_id = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO registry_credentials (id, customer_id, registry_type, registry_url, username,"
            " secret_encrypted, status, created_at, updated_at)"
            " VALUES (%s, %s, 'ghcr', %s, 'ci', %s, 'active', now(), now())",
            [credential_id, customer.pk, url, encrypt_secret("s3cret", credential_id)],
        )
    return credential_id


# --- sub-customers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["core", "pro", "enterprise"])
def test_only_a_sub_customers_license_may_be_a_parent_in_sql(tier):
    """Plain SQL cannot make a customer the parent of another unless its usable license has sub_customers (HN203)."""
    parent = LicenseFactory(tier=tier).customer
    child = CustomerFactory()
    with _sqlstate_error("HN203", PARENT_NOT_ENTITLED.format(parent=parent.name)):
        _set_parent_sql(child, parent)
    with _sqlstate_error("HN203", PARENT_NOT_ENTITLED.format(parent=parent.name)):
        Customer.objects.create(name="new child", parent=parent)
    child.refresh_from_db()
    assert child.parent_id is None


def test_an_asp_license_or_a_feature_override_may_be_a_parent():
    """An asp license, or any tier with sub_customers turned on, may have sub-customers."""
    asp = LicenseFactory(tier="asp").customer
    pro_with_feature = LicenseFactory(tier="pro", feature_overrides={"sub_customers": True}).customer
    for parent in (asp, pro_with_feature):
        child = CustomerFactory()
        _set_parent_sql(child, parent)
        child.refresh_from_db()
        assert child.parent_id == parent.pk


@pytest.mark.parametrize("state", ["suspended", "expired", "none", "override_off"])
def test_a_parent_needs_a_usable_license_with_the_feature(state):
    """A suspended, expired, missing or feature-less asp license does not entitle a customer to sub-customers."""
    parent = CustomerFactory()
    if state == "suspended":
        LicenseFactory(customer=parent, tier="asp", status="suspended")
    elif state == "expired":
        license = LicenseFactory(customer=parent, tier="asp")
        with connection.cursor() as cursor:  # past its expiry but not yet flipped by expire_licenses()
            cursor.execute(
                "UPDATE licenses SET starts_at = now() - interval '2 days', expires_at = now() - interval '1 day'"
                " WHERE id = %s",
                [license.pk],
            )
    elif state == "override_off":
        LicenseFactory(customer=parent, tier="asp", feature_overrides={"sub_customers": False})
    with _sqlstate_error("HN203", PARENT_NOT_ENTITLED.format(parent=parent.name)):
        _set_parent_sql(CustomerFactory(), parent)


def test_sub_customers_are_one_level_deep():
    """A sub-customer cannot be a parent, and a parent cannot become a sub-customer (HN203)."""
    top = LicenseFactory(tier="asp").customer
    middle = LicenseFactory(tier="asp").customer
    _set_parent_sql(middle, top)
    with _sqlstate_error("HN203", PARENT_IS_SUB_CUSTOMER.format(parent=middle.name)):
        _set_parent_sql(CustomerFactory(), middle)
    other = LicenseFactory(tier="asp").customer
    _set_parent_sql(CustomerFactory(), other)
    with _sqlstate_error("HN203", HAS_SUB_CUSTOMERS.format(customer=other.name)):
        _set_parent_sql(other, top)


def test_unrelated_updates_of_a_sub_customer_are_not_rechecked():
    """Renaming a sub-customer after its parent's license was suspended still works (only a new parent is checked)."""
    license = LicenseFactory(tier="asp")
    child = CustomerFactory()
    _set_parent_sql(child, license.customer)
    services.license_suspend(license=license)
    child.refresh_from_db()
    child.name = "renamed"
    child.save()
    child.refresh_from_db()
    assert (child.name, child.parent_id) == ("renamed", license.customer_id)


def test_a_parent_license_cannot_lose_the_feature_while_it_has_sub_customers():
    """Downgrading a parent's license, or turning sub_customers off, is refused in SQL and by the services."""
    license = LicenseFactory(tier="asp")
    parent = license.customer
    child = CustomerFactory()
    _set_parent_sql(child, parent)
    message = SUB_CUSTOMERS_NEED_ENTITLEMENT.format(customer=parent.name)
    with _sqlstate_error("HN203", message), connection.cursor() as cursor:
        cursor.execute("UPDATE licenses SET tier = 'enterprise' WHERE id = %s", [license.pk])
    with _sqlstate_error("HN203", message), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE licenses SET feature_overrides = '{\"sub_customers\": false}' WHERE id = %s", [license.pk]
        )
    with pytest.raises(services.LicensingError, match="must keep the sub_customers entitlement"):
        services.license_change_tier(license=license, tier="enterprise")
    with pytest.raises(services.LicensingError, match="must keep the sub_customers entitlement"):
        services.license_set_overrides(license=license, feature_overrides={"sub_customers": False})
    license.refresh_from_db()
    assert license.tier == "asp" and license.features["sub_customers"] is True


def test_suspending_or_revoking_a_parent_license_is_allowed_and_a_new_license_must_have_the_feature():
    """Suspension is allowed with sub-customers; a replacement license without sub_customers is refused."""
    license = LicenseFactory(tier="asp")
    parent = license.customer
    _set_parent_sql(CustomerFactory(), parent)
    services.license_revoke(license=license)
    message = SUB_CUSTOMERS_NEED_ENTITLEMENT.format(customer=parent.name)
    with pytest.raises(services.LicensingError) as info:
        services.license_issue(customer=parent, tier="pro")
    assert str(info.value) == message
    with _sqlstate_error("HN203", message):
        LicenseFactory(customer=parent, tier="pro")
    assert services.license_issue(customer=parent, tier="asp").license.features["sub_customers"]


def test_moving_the_sub_customers_away_allows_the_downgrade():
    """Once its sub-customers are detached (or deleted), a parent's license may drop sub_customers."""
    license = LicenseFactory(tier="asp")
    child = CustomerFactory()
    _set_parent_sql(child, license.customer)
    _set_parent_sql(child, None)
    assert services.license_change_tier(license=license, tier="pro").tier == "pro"


def test_python_validation_gives_the_same_messages():
    """Customer.full_clean and customer_set_parent refuse with the database's messages, and set a valid parent."""
    core = LicenseFactory(tier="core").customer
    child = CustomerFactory()
    child.parent = core
    with pytest.raises(ValidationError) as info:
        child.full_clean()
    assert info.value.message_dict["parent"] == [PARENT_NOT_ENTITLED.format(parent=core.name)]
    with pytest.raises(services.LicensingError) as info:
        services.customer_set_parent(customer=child, parent=core)
    assert info.value.message_dict["parent"] == [PARENT_NOT_ENTITLED.format(parent=core.name)]
    asp = LicenseFactory(tier="asp").customer
    assert services.customer_set_parent(customer=child, parent=asp).parent_id == asp.pk
    with pytest.raises(services.LicensingError) as info:
        services.customer_set_parent(customer=CustomerFactory(), parent=child)
    assert info.value.message_dict["parent"] == [PARENT_IS_SUB_CUSTOMER.format(parent=child.name)]


def test_customer_entitled_license_falls_back_to_the_parents():
    """customer_entitled_license_id: a sub-customer without a license of its own uses its parent's."""
    parent_license = LicenseFactory(tier="asp")
    child = CustomerFactory()
    own = LicenseFactory(tier="core")
    _set_parent_sql(child, parent_license.customer)
    _set_parent_sql(own.customer, parent_license.customer)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_entitled_license_id(%s), customer_entitled_license_id(%s),"
            " customer_entitled_license_id(%s)",
            [child.pk, own.customer_id, CustomerFactory().pk],
        )
        assert cursor.fetchone() == (parent_license.pk, own.pk, None)


# --- registry credential limit ------------------------------------------------------------------------------------


def test_plain_sql_cannot_give_a_core_customer_a_second_active_credential():
    """A core license allows one active credential: a second plain INSERT is refused with HN204 and the message."""
    customer = LicenseFactory(tier="core").customer
    _insert_credential_sql(customer)
    with _sqlstate_error("HN204", REGISTRY_LIMIT_REACHED.format(limit=1, count=1)):
        _insert_credential_sql(customer, "https://second.example")
    assert RegistryCredential.objects.filter(customer=customer, status="active").count() == 1


def test_reactivating_a_credential_counts_against_the_limit():
    """Setting a revoked credential active again (or undeleting it) is checked like an insert."""
    customer = LicenseFactory(tier="core").customer
    first = _insert_credential_sql(customer)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE registry_credentials SET status = 'revoked', revoked_at = now() WHERE id = %s", [first])
    _insert_credential_sql(customer, "https://second.example")
    with _sqlstate_error("HN204", REGISTRY_LIMIT_REACHED.format(limit=1, count=1)), connection.cursor() as cursor:
        cursor.execute("UPDATE registry_credentials SET status = 'active', revoked_at = NULL WHERE id = %s", [first])
    with connection.cursor() as cursor:  # updating an active credential in place is not a new one
        cursor.execute("UPDATE registry_credentials SET username = 'renamed' WHERE customer_id = %s", [customer.pk])


def test_unlimited_and_overridden_limits():
    """NULL max_registries (enterprise) is unlimited; an override of the limit is what the trigger enforces."""
    enterprise = LicenseFactory(tier="enterprise").customer
    for i in range(7):
        _insert_credential_sql(enterprise, f"https://r{i}.example")
    pro = LicenseFactory(tier="pro", max_registries_override=2).customer
    _insert_credential_sql(pro)
    _insert_credential_sql(pro)
    with _sqlstate_error("HN204", REGISTRY_LIMIT_REACHED.format(limit=2, count=2)):
        _insert_credential_sql(pro)


def test_the_service_and_the_database_give_the_same_limit_message():
    """credential_add refuses at the limit with the message the trigger raises."""
    customer = LicenseFactory(tier="core").customer
    services.credential_add(customer=customer, registry_type="ghcr", registry_url="https://a", username="u", secret="s")
    with pytest.raises(services.LicensingError) as info:
        services.credential_add(
            customer=customer, registry_type="ghcr", registry_url="https://b", username="u", secret="s"
        )
    assert str(info.value) == REGISTRY_LIMIT_REACHED.format(limit=1, count=1)


def test_a_sub_customer_without_a_license_uses_its_parents_limit():
    """A sub-customer's credentials are bounded by its parent's license (asp: unlimited; an override binds)."""
    parent_license = LicenseFactory(tier="asp", max_registries_override=1)
    child = CustomerFactory()
    _set_parent_sql(child, parent_license.customer)
    child.refresh_from_db()
    credential = services.credential_add(
        customer=child, registry_type="ghcr", registry_url="https://a", username="u", secret="s"
    )
    assert credential.customer_id == child.pk
    with _sqlstate_error("HN204", REGISTRY_LIMIT_REACHED.format(limit=1, count=1)):
        _insert_credential_sql(child)


def test_customers_without_a_usable_license_are_not_limited_by_the_database():
    """No usable license, no limit to enforce in SQL (the service refuses such customers itself)."""
    customer = CustomerFactory()
    RegistryCredentialFactory(customer=customer)
    RegistryCredentialFactory(customer=customer)
    with pytest.raises(services.LicensingError, match="no usable license"):
        services.credential_add(
            customer=customer, registry_type="ghcr", registry_url="https://a", username="u", secret="s"
        )


@pytest.mark.django_db(transaction=True)
def test_concurrent_plain_sql_inserts_never_pass_the_limit():
    """Eight connections inserting credentials at once against a limit of three: exactly three succeed, the rest
    fail with HN204."""
    customer = LicenseFactory(tier="pro", max_registries_override=3).customer

    def insert(i):
        with transaction.atomic():
            _insert_credential_sql(customer, f"https://r{i}.example")
            # Hold the transaction open a moment so the racers really overlap.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(0.05)")
        return "ok"

    outcomes = [
        outcome.__cause__.diag.sqlstate if isinstance(outcome, DatabaseError) else outcome
        for outcome in run_together(*(functools.partial(insert, i) for i in range(8)))
    ]
    assert sorted(map(str, outcomes)) == ["HN204"] * 5 + ["ok"] * 3, outcomes
    assert RegistryCredential.objects.filter(customer=customer, status="active").count() == 3


def test_the_customer_admin_refuses_a_parent_without_the_entitlement(admin_client):
    """The customer change form shows the database's message for a parent whose license lacks sub_customers, and
    saves a parent that has it."""
    from django.urls import reverse

    pro = LicenseFactory(tier="pro").customer
    asp = LicenseFactory(tier="asp").customer
    child = CustomerFactory()
    url = reverse("admin:licensing_customer_change", args=[child.pk])
    form = {
        "name": child.name,
        "contact_name": child.contact_name,
        "contact_email": child.contact_email,
        "publishes_to_shared_cache": "on",
        "metadata": "{}",
        **{
            f"{prefix}-{field}": "0"
            for prefix in ("licenses", "registry_credentials")
            for field in ("TOTAL_FORMS", "INITIAL_FORMS")
        },
    }
    response = admin_client.post(url, {**form, "parent": str(pro.pk)})
    assert response.status_code == 200
    assert PARENT_NOT_ENTITLED.format(parent=pro.name).replace('"', "&quot;") in response.content.decode()
    child.refresh_from_db()
    assert child.parent_id is None
    response = admin_client.post(url, {**form, "parent": str(asp.pk)})
    assert response.status_code == 302
    child.refresh_from_db()
    assert child.parent_id == asp.pk


@pytest.mark.django_db(transaction=True)
def test_a_new_sub_customer_and_a_downgrade_of_its_parent_cannot_both_commit():
    """While one connection adds a sub-customer (uncommitted), a second connection downgrading the parent's license
    waits for it and is then refused (HN203): the parent's license row is locked FOR SHARE by the check."""
    license = LicenseFactory(tier="asp")
    child = CustomerFactory()
    added = threading.Event()

    def add_child():
        with transaction.atomic():
            _set_parent_sql(child, license.customer)
            added.set()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(0.5)")

    def downgrade():
        added.wait(timeout=10)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE licenses SET tier = 'enterprise' WHERE id = %s", [license.pk])
        return "ok"

    child_added, downgraded = run_together(add_child, downgrade, timeout=30)
    license.refresh_from_db()
    child.refresh_from_db()
    assert child_added is None
    assert isinstance(downgraded, DatabaseError) and downgraded.__cause__.diag.sqlstate == "HN203", downgraded
    assert (license.tier, child.parent_id) == ("asp", license.customer_id)
