from django.core.management.base import BaseCommand
from django.views.decorators.debug import sensitive_variables

from licensing import services
from licensing.management.commands._automation import (
    REFUSALS,
    add_format_argument,
    customer_by_id,
    emit,
    moment,
    refuse,
)
from licensing.tiers import TIERS


class Command(BaseCommand):
    help = (
        "Issue a license to a customer (licensing.services.license_issue). The license key is printed once, in "
        "this output only (it is stored encrypted): keep it. For operators' automation."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customer", required=True, help="The customer's id.")
        parser.add_argument("--tier", required=True, choices=sorted(TIERS), help="The tier: its limits and features.")
        parser.add_argument("--expires", default=None, help="Expiry: a date (UTC midnight) or ISO 8601 date-time.")
        parser.add_argument("--starts", default=None, help="Start (default now).")
        parser.add_argument("--trial", action="store_true", help="A trial license (needs --expires).")
        parser.add_argument("--monthly-build-quota", type=int, default=None, help="Override the tier's quota.")
        parser.add_argument(
            "--max-concurrent-builds", type=int, default=None, help="Override the tier's concurrent builds."
        )
        parser.add_argument(
            "--max-registries", type=int, default=None, help="Override the tier's registry credential limit."
        )
        parser.add_argument("--notes", default="", help="Notes for operators, stored on the license.")
        add_format_argument(parser)

    @sensitive_variables("issued")
    def handle(self, *args, **options):
        customer = customer_by_id(options["customer"])
        try:
            issued = services.license_issue(
                customer=customer,
                tier=options["tier"],
                expires_at=moment(options["expires"], "--expires"),
                starts_at=moment(options["starts"], "--starts"),
                is_trial=options["trial"],
                monthly_build_quota=options["monthly_build_quota"],
                max_concurrent_builds=options["max_concurrent_builds"],
                max_registries=options["max_registries"],
                notes=options["notes"],
            )
        except REFUSALS as error:
            raise refuse(error) from None
        license = issued.license
        data = {
            "id": str(license.pk),
            "customer_id": str(customer.pk),
            "tier": license.tier,
            "status": license.status,
            "starts_at": license.starts_at.isoformat(),
            "expires_at": license.expires_at.isoformat() if license.expires_at else None,
            "monthly_build_quota": license.monthly_build_quota,
            "max_concurrent_builds": license.max_concurrent_builds,
            "license_key": issued.key,
        }
        emit(
            self,
            options,
            data,
            f"issued {license.tier} license {license.pk} to customer {customer.pk}\n"
            f"license key (shown only now; it is stored encrypted): {issued.key}",
        )
