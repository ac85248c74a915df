"""Demo data: a handful of customers across the four tiers, a trial, an expired license and registry credentials
of several types. Idempotent: customers are found by name, and existing ones are left as they are."""

import datetime as dt

import pghistory
from django.db import transaction
from django.utils import timezone

from honua.registry import demo_loader
from licensing.models import Customer, License
from licensing.services import credential_add, customer_create, customer_create_with_trial, license_issue

DEMO_TAG = {"demo": "licensing"}

# name, contact, email, tier, kind ("paid", "trial", "expired"), overrides, credentials (type, url, username)
CUSTOMERS = [
    (
        "Acme Robotics",
        "Ada Park",
        "ada@acme-robotics.example",
        "core",
        "paid",
        {},
        [("dockerhub", "https://index.docker.io/v1/", "acmebot")],
    ),
    (
        "Blue Harbor Analytics",
        "Ben Ito",
        "ben@blueharbor.example",
        "pro",
        "paid",
        {"monthly_build_quota": 750},
        [
            ("ghcr", "https://ghcr.io", "blueharbor-ci"),
            ("ecr", "https://123456789012.dkr.ecr.us-west-2.amazonaws.com", "AWS"),
        ],
    ),
    (
        "Cinder Labs",
        "Cora Diaz",
        "cora@cinderlabs.example",
        "enterprise",
        "paid",
        {},
        [
            ("harbor", "https://harbor.cinderlabs.example", "robot$builds"),
            ("acr", "https://cinderlabs.azurecr.io", "cinder-push"),
            ("gcr", "https://us-docker.pkg.dev", "_json_key"),
        ],
    ),
    (
        "Driftwood Hosting",
        "Dev Shah",
        "dev@driftwood.example",
        "asp",
        "paid",
        {},
        [("quay", "https://quay.io", "driftwood+builder")],
    ),
    ("Ember Foods", "Eli Moss", "eli@emberfoods.example", "pro", "trial", {}, []),
    ("Fjord Maps", "Freya Lund", "freya@fjordmaps.example", "core", "expired", {}, []),
]


@demo_loader("licensing")
def load(*, rng, scale: str) -> str:
    if scale != "demo":
        return "nothing for this scale"
    created = 0
    with transaction.atomic(), pghistory.context(command="seed_demo"):
        for name, contact, email, tier, kind, overrides, credentials in CUSTOMERS:
            if Customer.objects.filter(name=name, metadata__demo="licensing").exists():
                continue
            created += 1
            if kind == "trial":
                customer, _ = customer_create_with_trial(
                    name=name, contact_name=contact, contact_email=email, tier=tier, metadata=DEMO_TAG
                )
                continue
            customer = customer_create(name=name, contact_name=contact, contact_email=email, metadata=DEMO_TAG)
            expires_at = timezone.now() + dt.timedelta(days=rng.randint(90, 365))
            issued = license_issue(customer=customer, tier=tier, expires_at=expires_at, **overrides)
            for registry_type, url, username in credentials:
                credential_add(
                    customer=customer,
                    registry_type=registry_type,
                    registry_url=url,
                    username=username,
                    secret=f"demo-{rng.getrandbits(128):032x}",
                    expires_at=timezone.now() + dt.timedelta(days=rng.randint(30, 400)),
                )
            if kind == "expired":
                # Back-date the license so it lapsed last month, as expire_licenses() would have left it.
                now = timezone.now()
                License.objects.filter(pk=issued.license.pk).update(
                    starts_at=now - dt.timedelta(days=400),
                    expires_at=now - dt.timedelta(days=35),
                    status=License.Status.EXPIRED,
                )
    total = Customer.objects.filter(metadata__demo="licensing").count()
    return f"{created} customers created ({total} demo customers in all)"
