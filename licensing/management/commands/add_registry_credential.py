import os
import sys

from django.core.management.base import BaseCommand, CommandError
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
from licensing.models import RegistryCredential


class Command(BaseCommand):
    help = (
        "Add a registry credential for a customer (licensing.services.credential_add). The secret is read from "
        "stdin (--secret-stdin) or the environment variable named by --secret-env, never from the command line, "
        "and is never printed. For operators' automation."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customer", required=True, help="The customer's id.")
        parser.add_argument(
            "--type", required=True, choices=RegistryCredential.RegistryType.values, help="The registry's kind."
        )
        parser.add_argument("--url", required=True, help="The registry's URL, e.g. https://ghcr.io")
        parser.add_argument("--username", required=True, help="The user name the registry expects.")
        secret = parser.add_mutually_exclusive_group(required=True)
        secret.add_argument("--secret-stdin", action="store_true", help="Read the secret from stdin.")
        secret.add_argument("--secret-env", metavar="NAME", help="Read the secret from this environment variable.")
        parser.add_argument("--expires", default=None, help="Expiry: a date or ISO 8601 date-time.")
        add_format_argument(parser)

    @sensitive_variables("secret")
    def handle(self, *args, **options):
        customer = customer_by_id(options["customer"])
        if options["secret_stdin"]:
            secret = sys.stdin.read().strip()
        else:
            secret = os.environ.get(options["secret_env"], "")
            if not secret:
                raise CommandError(f"environment variable {options['secret_env']} is empty or not set", returncode=2)
        try:
            credential = services.credential_add(
                customer=customer,
                registry_type=options["type"],
                registry_url=options["url"],
                username=options["username"],
                secret=secret,
                expires_at=moment(options["expires"], "--expires"),
            )
        except REFUSALS as error:
            raise refuse(error) from None
        data = {
            "id": str(credential.pk),
            "customer_id": str(customer.pk),
            "registry_type": credential.registry_type,
            "registry_url": credential.registry_url,
            "username": credential.username,
            "status": credential.status,
        }
        emit(self, options, data, f"added {credential.registry_type} credential {credential.pk} for {customer.pk}")
