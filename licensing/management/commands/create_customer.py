from django.core.management.base import BaseCommand

from licensing import services
from licensing.management.commands._automation import REFUSALS, add_format_argument, emit, refuse


class Command(BaseCommand):
    help = "Create a customer (licensing.services.customer_create); prints its id. For operators' automation."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="The customer's name (not empty).")
        parser.add_argument("--contact-name", default="", help="A contact person (optional).")
        parser.add_argument("--contact-email", default="", help="A contact e-mail address (optional).")
        add_format_argument(parser)

    def handle(self, *args, **options):
        try:
            customer = services.customer_create(
                name=options["name"], contact_name=options["contact_name"], contact_email=options["contact_email"]
            )
        except REFUSALS as error:
            raise refuse(error) from None
        emit(
            self,
            options,
            {"id": str(customer.pk), "name": customer.name, "contact_email": customer.contact_email},
            f"created customer {customer.pk} ({customer.name})",
        )
