"""Shared by the operators' automation commands (create_customer, issue_license, add_registry_credential): output as
text or one JSON object, refusals as exit status 1 with the reason on stderr (never a traceback or a secret)."""

import datetime as dt
import json
import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from honua import errors
from licensing.models import Customer


def add_format_argument(parser) -> None:
    parser.add_argument(
        "--format", choices=["text", "json"], default="text", help="json: one JSON object on stdout (automation)."
    )


def emit(command, options: dict, data: dict, text: str) -> None:
    if options["format"] == "json":
        command.stdout.write(json.dumps(data, sort_keys=True, default=str))
    else:
        command.stdout.write(command.style.SUCCESS(text))


# What the services raise when they refuse (LicensingError is both).
REFUSALS = (errors.HonuaError, ValidationError)


def refuse(error: Exception) -> CommandError:
    """Exit status 1 with the service's message."""
    message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
    return CommandError(message, returncode=1)


def customer_by_id(value: str) -> Customer:
    try:
        return Customer.objects.get(pk=uuid.UUID(value), deleted_at=None)
    except (ValueError, Customer.DoesNotExist):
        raise CommandError(f"customer {value} does not exist", returncode=1) from None


def moment(value: str | None, option: str) -> dt.datetime | None:
    """A date (midnight UTC) or an ISO 8601 date and time; None when not given."""
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = dt.datetime.combine(day, dt.time.min)
    if parsed is None:
        raise CommandError(f"{option} must be a date (2027-12-31) or an ISO 8601 date and time", returncode=2)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, dt.UTC)
