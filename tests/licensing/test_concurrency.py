"""Races settled by the database: two issuers for one customer, and credential adds at the registry limit."""

import threading

import pytest
from django.db import connection

from licensing import services
from licensing.models import License, RegistryCredential
from tests.licensing.factories import CustomerFactory, LicenseFactory


def _race(count, work):
    """Run ``work(i)`` in ``count`` threads that start together, each on its own connection; their outcomes."""
    barrier = threading.Barrier(count)
    outcomes = [None] * count

    def run(i):
        try:
            barrier.wait(timeout=10)
            outcomes[i] = ("ok", work(i))
        except services.LicensingError as error:
            outcomes[i] = ("refused", str(error))
        except Exception as error:  # pragma: no cover - reported by the assertion below
            outcomes[i] = ("crashed", repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_issuers_one_wins_the_other_gets_a_clear_error():
    """Two transactions issuing a license to the same customer at once: exactly one license, one clear refusal."""
    customer = CustomerFactory()
    tiers = ["pro", "enterprise"]
    outcomes = _race(2, lambda i: services.license_issue(customer=customer, tier=tiers[i]).license.pk)
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["ok", "refused"], outcomes
    assert [message for kind, message in outcomes if kind == "refused"] == [services.ALREADY_LICENSED]
    assert License.objects.filter(customer=customer, status="active").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_credential_adds_never_pass_the_registry_limit():
    """Four concurrent adds against a limit of two: two succeed, two are refused with the limit message."""
    license = LicenseFactory(tier="core", max_registries_override=2)
    outcomes = _race(
        4,
        lambda i: (
            services.credential_add(
                customer=license.customer,
                registry_type="ghcr",
                registry_url=f"https://r{i}.example",
                username="ci",
                secret=f"s{i}",
            ).pk
        ),
    )
    assert sorted(kind for kind, _ in outcomes) == ["ok", "ok", "refused", "refused"], outcomes
    assert all("allows 2 registry credential" in message for kind, message in outcomes if kind == "refused")
    assert RegistryCredential.objects.filter(customer=license.customer, status="active").count() == 2
