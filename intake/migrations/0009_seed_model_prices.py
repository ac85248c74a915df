"""Seed model_prices with the list prices the project priced messages with until now (settings'
HONUA_MODEL_PRICES, now deprecated) and the vendors' public list prices for the newer models.

Source: the vendors' pricing pages (https://www.anthropic.com/pricing, https://openai.com/api/pricing), standard
(non-batch, non-cached) per-million-token prices as published in 2025 and written down on 2026-11-30; they could
not be re-read from the live pages when this migration was written (no network), so an admin should confirm them
and, when a price changes, close the row (valid_to) and add the new one. valid_from is the start of 2024, so the
messages already stored keep the price they were charged at.
"""

import datetime as dt
from decimal import Decimal

from django.db import migrations

SOURCE = "vendor list price (anthropic.com/pricing, openai.com/api/pricing), recorded 2026-11-30"
SINCE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

# pattern, input, output (US$ per million tokens). Longest matching pattern wins, so "^gpt-4o-mini" beats "^gpt-4o"
# and a dated snapshot ("claude-sonnet-4-20250514") takes its family's price, as the settings' prefixes did.
PRICES = [
    ("^claude-opus-4", "15.00", "75.00"),
    ("^claude-opus-4-5", "5.00", "25.00"),
    ("^claude-sonnet-4", "3.00", "15.00"),
    ("^claude-haiku-4", "1.00", "5.00"),
    ("^claude-3-5-haiku", "0.80", "4.00"),
    ("^gpt-4o", "2.50", "10.00"),
    ("^gpt-4o-mini", "0.15", "0.60"),
    ("^gpt-4\\.1", "2.00", "8.00"),
    ("^gpt-4\\.1-mini", "0.40", "1.60"),
    ("^gpt-4\\.1-nano", "0.10", "0.40"),
    ("^gpt-5", "1.25", "10.00"),
    ("^gpt-5-mini", "0.25", "2.00"),
    ("^gpt-5-nano", "0.05", "0.40"),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("intake", "ModelPrice")
    for pattern, input_price, output_price in PRICES:
        ModelPrice.objects.get_or_create(
            match_pattern=pattern,
            valid_from=SINCE,
            defaults={"input_price": Decimal(input_price), "output_price": Decimal(output_price), "source": SOURCE},
        )


def unseed(apps, schema_editor):
    apps.get_model("intake", "ModelPrice").objects.filter(valid_from=SINCE, source=SOURCE).delete()


class Migration(migrations.Migration):
    dependencies = [("intake", "0008_extraction_accuracy_evaluations")]

    operations = [migrations.RunPython(seed, unseed)]
