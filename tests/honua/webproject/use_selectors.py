"""What a web view does: read through the selectors (after a customer is set up through the services)."""

import dataclasses
import json

import django

django.setup()

import builds  # noqa: E402
from builds.queue import selectors as build_selectors  # noqa: E402
from builds.queue import services as build_services  # noqa: E402
from intake import selectors as intake_selectors  # noqa: E402
from licensing import selectors as licensing_selectors  # noqa: E402
from licensing import services as licensing_services  # noqa: E402

customer, issued = licensing_services.customer_create_with_trial(name="Web shop")
license = licensing_selectors.license_find_by_key(issued.key)
build = build_services.build_enqueue(customer=customer, manifest={"base": "python:3.12-slim", "packages": ["x"]})
print(
    json.dumps(
        {
            "installed_at": builds.__file__,
            "found_by_key": license is not None and license.pk == issued.license.pk,
            "usable": licensing_selectors.license_usable_for_customer(customer=customer).pk == issued.license.pk,
            "has_sbom": licensing_selectors.license_has_feature(license=issued.license, feature="sbom"),
            "quota": dataclasses.asdict(build_selectors.license_quota_usage(license=issued.license)),
            "active_builds": [str(b.pk) for b in build_selectors.builds_active(customer=customer)],
            "build": str(build.pk),
            "queue_depth": build_selectors.queue_depth_by_priority(),
            "conversations": intake_selectors.conversations_active(customer=customer).count(),
        },
        default=str,
    )
)
