"""Factories for customers and licenses, used by every app's tests."""

import hashlib
import uuid

import factory
from faker import Faker

from licensing.models import Customer, License

fake = Faker()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Faker("company")
    contact_name = factory.Faker("name")
    contact_email = factory.Faker("company_email")


class LicenseFactory(factory.django.DjangoModelFactory):
    """An active license. Its key fields hold placeholders, not a real encrypted key."""

    class Meta:
        model = License

    customer = factory.SubFactory(CustomerFactory)
    tier = License.Tier.PRO
    status = License.Status.ACTIVE
    license_key_encrypted = "placeholder"
    license_key_index = factory.LazyFunction(lambda: hashlib.sha256(uuid.uuid4().bytes).hexdigest())
