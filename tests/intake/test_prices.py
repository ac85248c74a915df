"""Model prices as data: validity by date, no overlapping periods, unpriced messages flagged and counted."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core import checks
from django.test import override_settings
from django.urls import reverse

from intake import selectors, services
from intake.apps import check_deprecated_prices_setting
from intake.models import ConversationMessage, ModelPrice
from tests.conftest import raises_db_error
from tests.licensing.factories import CustomerFactory

JAN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
JUN = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _price(pattern, input_price, output_price, valid_from, valid_to=None):
    return ModelPrice.objects.create(
        match_pattern=pattern,
        input_price=Decimal(input_price),
        output_price=Decimal(output_price),
        valid_from=valid_from,
        valid_to=valid_to,
        source="test",
    )


@pytest.fixture
def conversation(db):
    return services.conversation_start(customer=CustomerFactory(), model="acme-large-2", title="prices")


def test_price_valid_at_the_given_time(db):
    """A price change (one row closed, the next opened) prices each moment at the row valid then."""
    _price("^acme-large", "1", "2", JAN, JUN)
    _price("^acme-large", "4", "8", JUN)
    kwargs = {"model": "acme-large-2", "prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    assert services.message_cost(**kwargs, at=JAN + dt.timedelta(days=1)) == Decimal(3)
    assert services.message_cost(**kwargs, at=JUN - dt.timedelta(microseconds=1)) == Decimal(3)
    assert services.message_cost(**kwargs, at=JUN) == Decimal(12)
    assert services.message_cost(**kwargs, at=JAN - dt.timedelta(seconds=1)) is None
    # A price that was closed with no successor prices nothing after its end.
    _price("^retired-model", "1", "1", JAN, JUN)
    retired = {"model": "retired-model", "prompt_tokens": 1_000_000, "completion_tokens": 0}
    assert services.message_cost(**retired, at=JUN - dt.timedelta(days=1)) == Decimal(1)
    assert services.message_cost(**retired, at=JUN) is None


def test_longest_matching_pattern_wins(db):
    """Of several matching patterns the longest (most specific) prices the model; the seeded rows are used."""
    assert services.message_cost(model="gpt-4o-mini-2024-07-18", prompt_tokens=1_000_000, completion_tokens=0) == (
        Decimal("0.15")
    )
    assert services.message_cost(model="gpt-4o-2024-08-06", prompt_tokens=1_000_000, completion_tokens=0) == (
        Decimal("2.5")
    )


def test_message_uses_the_price_valid_at_its_time(conversation):
    """message_add prices with the row valid at now() (its created_at), not a closed older one."""
    now = dt.datetime.now(dt.UTC)
    _price("^acme-large", "1", "1", now - dt.timedelta(days=30), now - dt.timedelta(days=1))
    _price("^acme-large", "10", "10", now - dt.timedelta(days=1))
    message = services.message_add(conversation=conversation, role="assistant", content="x", prompt_tokens=100_000)
    assert (message.computed_cost, message.cost) == (Decimal(1), Decimal(1))


def test_overlapping_periods_of_one_pattern_are_refused(db):
    """The database's exclusion constraint and the service's check refuse two prices of one pattern at once."""
    _price("^acme-large", "1", "2", JAN, JUN)
    with pytest.raises(services.InvalidInput, match="another price of '\\^acme-large' is valid"):
        services.price_validate(
            match_pattern="^acme-large",
            input_price=1,
            output_price=1,
            valid_from=JAN + dt.timedelta(days=40),
            valid_to=None,
        )
    with raises_db_error("model_prices_no_overlap"):
        _price("^acme-large", "1", "2", JAN + dt.timedelta(days=40))
    # Adjacent periods ([JAN, JUN) then [JUN, ...)) and other patterns are fine.
    services.price_validate(match_pattern="^acme-large", input_price=1, output_price=1, valid_from=JUN, valid_to=None)
    _price("^acme-large", "4", "8", JUN)
    _price("^acme-large-2", "4", "8", JAN)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"match_pattern": "(unclosed"}, "is not a regular expression"),
        ({"input_price": Decimal(-1)}, services.PRICE_NEGATIVE),
        ({"valid_to": JAN}, "validity must start"),
    ],
)
def test_price_validation(db, fields, message):
    """A bad pattern, a negative price or an empty period is refused with a clear message."""
    row = {"match_pattern": "^x", "input_price": 1, "output_price": 1, "valid_from": JAN, "valid_to": None} | fields
    with pytest.raises(services.InvalidInput, match=message):
        services.price_validate(**row)


def test_database_refuses_negative_prices_and_empty_periods(db):
    """The same rules hold in the database."""
    with raises_db_error("model_prices_prices_nonneg"):
        _price("^x", "-1", "1", JAN)
    with raises_db_error("model_prices_period_valid"):
        _price("^x", "1", "1", JUN, JAN)


def test_unpriced_message_is_flagged_counted_and_later_priced(conversation):
    """An unpriced model's usage is flagged (never a silent 0) and counted; once a price is added, repricing
    gives each message the price valid at its time and the conversation's total stays the exact sum."""
    first = services.message_add(conversation=conversation, role="assistant", content="a", prompt_tokens=2_000_000)
    second = services.message_add(conversation=conversation, role="assistant", content="b", completion_tokens=10)
    user = services.message_add(conversation=conversation, role="user", content="no usage")
    flags = dict(ConversationMessage.objects.values_list("pk", "unpriced"))
    assert (flags[first.pk], flags[second.pk], flags[user.pk]) == (True, True, False)
    assert selectors.messages_unpriced_count() == 2
    conversation.refresh_from_db()
    assert conversation.total_cost == 0

    _price("^acme-large", "0.5", "100", JAN)
    assert services.messages_reprice() == 2
    assert selectors.messages_unpriced_count() == 0
    conversation.refresh_from_db()
    assert conversation.total_cost == Decimal("1.001") == sum(m.cost for m in conversation.messages.all())


def test_given_cost_is_not_unpriced(conversation):
    """A caller-given cost makes the message priced even when no price row matches."""
    message = services.message_add(
        conversation=conversation, role="assistant", content="a", prompt_tokens=10, cost=Decimal("0.2")
    )
    message.refresh_from_db()
    assert (message.unpriced, message.cost) == (False, Decimal("0.2"))


def test_deprecated_setting_warns():
    """HONUA_MODEL_PRICES still defined in settings raises intake.W001 instead of being silently ignored."""
    assert check_deprecated_prices_setting() == []
    with override_settings(HONUA_MODEL_PRICES={"x": {"input": 1, "output": 1}}):
        (warning,) = check_deprecated_prices_setting()
    assert (warning.id, warning.level) == ("intake.W001", checks.WARNING)


def test_admin_adds_a_price_and_refuses_an_overlap(admin_client):
    """An admin adds a price in the admin; an overlapping one is refused with the service's message."""
    url = reverse("admin:intake_modelprice_add")
    form = {
        "match_pattern": "^acme",
        "input_price": "1",
        "output_price": "2",
        "valid_from_0": "2026-01-01",
        "valid_from_1": "00:00:00",
        "source": "acme.example/pricing, read 2026-01-01",
    }
    assert admin_client.post(url, form).status_code == 302
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "another price of" in response.content.decode()
    assert ModelPrice.objects.filter(match_pattern="^acme").count() == 1


def test_operators_only_read_prices(client, django_user_model):
    """The operators' role sees the prices and cannot add or change them."""
    from django.contrib.auth.models import Group

    from console.roles import OPERATORS

    user = django_user_model.objects.create_user("op", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATORS))
    client.force_login(user)
    price = ModelPrice.objects.first()
    assert client.get(reverse("admin:intake_modelprice_changelist")).status_code == 200
    assert client.get(reverse("admin:intake_modelprice_add")).status_code == 403
    response = client.post(
        reverse("admin:intake_modelprice_change", args=[price.pk]), {"match_pattern": "^hacked", "source": "x"}
    )
    assert response.status_code == 403
    price.refresh_from_db()
    assert price.match_pattern != "^hacked"


def test_dashboard_counts_unpriced_messages(admin_client, conversation):
    """The console's conversations panel says how many messages are unpriced, so totals never silently read low."""
    services.message_add(conversation=conversation, role="assistant", content="a", prompt_tokens=10)
    services.message_add(conversation=conversation, role="assistant", content="b", prompt_tokens=10)
    page = admin_client.get(reverse("admin:console_dashboard")).content.decode()
    assert "2 unpriced message(s)" in page


def test_evaluation_runs_are_read_only_in_the_admin(admin_client):
    """The evaluation runs list renders and offers no add form (only the command writes them)."""
    assert admin_client.get(reverse("admin:intake_extractionevaluation_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:intake_extractionevaluation_add")).status_code == 403
