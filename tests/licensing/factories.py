"""Factories for customers, licenses and registry credentials, used by every app's tests.

``LicenseFactory`` builds an active license with a real key, encrypted and blind-indexed like the services do;
pass ``key="..."`` to choose it (keys are write-only: keep the one you passed). ``RegistryCredentialFactory``
stores ``secret`` encrypted the same way.
"""

import uuid

import factory
from faker import Faker

from licensing.keys import encrypt_license_key, encrypt_secret, generate_license_key, license_key_index
from licensing.models import Customer, License, RegistryCredential

fake = Faker()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Faker("company")
    contact_name = factory.Faker("name")
    contact_email = factory.Faker("company_email")


class LicenseFactory(factory.django.DjangoModelFactory):
    """An active license (pro by default) with an encrypted, blind-indexed key."""

    class Meta:
        model = License

    class Params:
        key = factory.LazyFunction(generate_license_key)

    id = factory.LazyFunction(uuid.uuid4)
    customer = factory.SubFactory(CustomerFactory)
    tier = License.Tier.PRO
    status = License.Status.ACTIVE
    license_key_encrypted = factory.LazyAttribute(lambda o: encrypt_license_key(o.key, o.id))
    license_key_index = factory.LazyAttribute(lambda o: license_key_index(o.key))


class RegistryCredentialFactory(factory.django.DjangoModelFactory):
    """An active registry credential whose ``secret`` is stored encrypted."""

    class Meta:
        model = RegistryCredential

    class Params:
        secret = factory.LazyFunction(lambda: f"secret-{uuid.uuid4().hex}")

    id = factory.LazyFunction(uuid.uuid4)
    customer = factory.SubFactory(CustomerFactory)
    registry_type = RegistryCredential.RegistryType.GHCR
    registry_url = "https://ghcr.io"
    username = factory.Faker("user_name")
    secret_encrypted = factory.LazyAttribute(lambda o: encrypt_secret(o.secret, o.id))
