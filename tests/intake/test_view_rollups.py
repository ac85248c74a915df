"""conversation_performance_summary, intent_analytics and extraction_accuracy from the daily rollups of the closed
days plus the live rows of the rest (issue 15; intake/sql/0012_intake_view_rollups.sql): each view equals its
released definition over the raw tables (kept here as oracles, apart from the code) unfolded, folded, and after
late changes to folded days (a message added to yesterday's conversation, an old intent edited or added, an old
extraction verified or deleted, a conversation deleted, a manifest submitted, a conversation's model changed), which
are marked, read live at once, and folded by the next fold; an hourly fold with nothing marked touches nothing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from intake import services
from intake.models import BuildManifest, Conversation, ConversationIntent, RequirementExtraction
from tests.builds.factories import BuildFactory
from tests.conftest import sql_rows
from tests.intake.factories import (
    BuildManifestFactory,
    ConversationFactory,
    ExtractionFactory,
    IntentFactory,
    MessageFactory,
)
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC

# The released views (intake/sql/0004_intake_views.sql, 0008_extraction_accuracy_evaluations.sql), over the raw
# tables: the oracles.
ORACLES = {
    "conversation_performance_summary": """
        SELECT (c.started_at AT TIME ZONE 'UTC')::date || '/' || c.model AS id,
               (c.started_at AT TIME ZONE 'UTC')::date AS day,
               c.model,
               count(*)::integer AS conversations,
               sum(c.message_count)::bigint AS messages,
               sum(c.prompt_tokens)::bigint AS prompt_tokens,
               sum(c.completion_tokens)::bigint AS completion_tokens,
               sum(c.prompt_tokens + c.completion_tokens)::bigint AS total_tokens,
               sum(c.total_cost) AS total_cost,
               count(c.satisfaction_score)::integer AS rated_conversations,
               round(avg(c.satisfaction_score), 2) AS avg_satisfaction,
               count(s.conversation_id)::integer AS submitted_conversations,
               round(count(s.conversation_id)::numeric / count(*), 4) AS submitted_share
        FROM conversations c
        LEFT JOIN (SELECT DISTINCT m.conversation_id FROM build_manifests m WHERE m.status = 'submitted') s
               ON s.conversation_id = c.id
        WHERE c.deleted_at IS NULL
        GROUP BY 2, 3""",
    "intent_analytics": """
        SELECT (i.created_at AT TIME ZONE 'UTC')::date || '/' || i.intent AS id,
               (i.created_at AT TIME ZONE 'UTC')::date AS day,
               i.intent,
               count(*)::integer AS intents,
               count(DISTINCT i.conversation_id)::integer AS conversations,
               round(avg(i.confidence), 3) AS avg_confidence
        FROM conversation_intents i
        JOIN conversations c ON c.id = i.conversation_id AND c.deleted_at IS NULL
        GROUP BY 2, 3""",
    "extraction_accuracy": """
        WITH production AS (
            SELECT e.requirement_type,
                   count(*)::integer AS extractions,
                   count(*) FILTER (WHERE e.verification <> 'unverified')::integer AS verified,
                   count(*) FILTER (WHERE e.verification = 'correct')::integer AS correct,
                   count(*) FILTER (WHERE e.verification = 'corrected')::integer AS corrected,
                   count(*) FILTER (WHERE e.verification = 'incorrect')::integer AS incorrect,
                   round(avg(e.confidence), 3) AS avg_confidence
            FROM requirement_extractions e
            JOIN conversations c ON c.id = e.conversation_id AND c.deleted_at IS NULL
            GROUP BY e.requirement_type
        ), latest_run AS (
            SELECT run_id, created_at, extractor FROM extraction_evaluations WHERE split = 'test'
            ORDER BY created_at DESC, id DESC LIMIT 1
        ), evaluation AS (
            SELECT v.requirement_type, r.created_at, r.extractor,
                   round(v.true_positives::numeric / nullif(v.true_positives + v.false_positives, 0), 4) AS p,
                   round(v.true_positives::numeric / nullif(v.true_positives + v.false_negatives, 0), 4) AS r,
                   round(2 * v.true_positives::numeric
                         / nullif(2 * v.true_positives + v.false_positives + v.false_negatives, 0), 4) AS f1
            FROM extraction_evaluations v JOIN latest_run r ON r.run_id = v.run_id
            WHERE v.split = 'test' AND v.requirement_type <> 'all'
        )
        SELECT coalesce(p.requirement_type, v.requirement_type)::varchar(32) AS requirement_type,
               coalesce(p.extractions, 0), coalesce(p.verified, 0), coalesce(p.correct, 0),
               coalesce(p.corrected, 0), coalesce(p.incorrect, 0),
               coalesce(round(p.verified::numeric / nullif(p.extractions, 0), 4), 0),
               round(p.correct::numeric / nullif(p.verified, 0), 4),
               p.avg_confidence, v.created_at, v.extractor::varchar(200), v.p, v.r, v.f1
        FROM production p FULL JOIN evaluation v ON v.requirement_type = p.requirement_type""",
}
ROLLUPS = ("conversation_daily", "conversation_model_daily", "intent_daily", "extraction_daily")


def _rows(query: str) -> list[tuple]:
    """The rows as text (numeric scales included), sorted."""
    return sorted(tuple(None if v is None else str(v) for v in row) for row in sql_rows(query))


def assert_views_equal_the_oracles() -> None:
    for view, oracle in ORACLES.items():
        assert _rows(f"SELECT * FROM {view}") == _rows(oracle), view


def _midnight(days_ago: int) -> dt.datetime:
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days_ago)


def fold() -> int:
    """Folds (no grace period, no re-fold window) until yesterday is folded and nothing is marked; the days folded."""
    total = 0
    while True:
        (folded,) = sql_rows("SELECT fold_conversation_daily(31, 0, interval '0')")[0]
        total += folded
        (through,) = sql_rows("SELECT folded_through FROM conversation_daily_state")[0]
        if through == _midnight(1).date() and not dirty_days():
            return total


def dirty_days() -> list[dt.date]:
    return [row[0] for row in sql_rows("SELECT day FROM conversation_daily_dirty ORDER BY day")]


def _on(days_ago: int, *, model: str | None = None):
    found = Conversation.objects.filter(
        started_at__gte=_midnight(days_ago), started_at__lt=_midnight(days_ago - 1), deleted_at__isnull=True
    )
    return found.filter(model=model) if model else found


@pytest.fixture
def history():
    return make_history()


def make_history():
    """Conversations on many days up to now (first and last microseconds of days), two models, messages, scores,
    a deleted one a day, submitted manifests; intents and extractions on the conversations' days and the next
    (past midnight), of several intents, types, verifications and confidences."""
    license = LicenseFactory()
    customer = license.customer
    types = ["base_image", "language", "package", "port"]
    verifications = ["unverified", "correct", "incorrect", "corrected"]
    for days_ago in (40, 9, 3, 2, 1, 0):
        day = _midnight(days_ago)
        for k, at in enumerate(
            (day, day + dt.timedelta(hours=11, minutes=7), day + dt.timedelta(days=1) - dt.timedelta(microseconds=1))
        ):
            if at > timezone.now():
                at = timezone.now() - dt.timedelta(seconds=1)
            conversation = ConversationFactory(customer=customer, model=("m1", "m2")[k % 2])
            for m in range(k + 1):
                MessageFactory(
                    conversation=conversation,
                    prompt_tokens=100 * m + days_ago,
                    completion_tokens=7 * k,
                    given_cost=Decimal("0.000001") * (m + 1) + Decimal(days_ago) / 7,
                )
            for n, intent in enumerate(("new_build", "question", "new_build")[: k + 1]):
                IntentFactory(conversation=conversation, intent=intent, confidence=Decimal("0.5") + Decimal(n + k) / 9)
            for n in range(k + 2):
                ExtractionFactory(
                    conversation=conversation,
                    requirement_type=types[(n + k) % 4],
                    confidence=Decimal("0.333") + Decimal(n) / 7,
                    verification=verifications[(n + days_ago) % 4],
                    corrected_value="fixed" if verifications[(n + days_ago) % 4] == "corrected" else None,
                )
            # Intents and extractions a few minutes after the start: the last conversation's cross midnight.
            later = min(at + dt.timedelta(minutes=5), timezone.now())
            conversation.intents.update(created_at=later)
            conversation.extractions.update(created_at=at)
            Conversation.objects.filter(pk=conversation.pk).update(
                started_at=at,
                satisfaction_score=(k % 5) + 1 if k != 1 else None,
                deleted_at=at if (k == 1 and days_ago in (9, 2)) else None,
            )
            if k == 0:
                BuildManifestFactory(
                    conversation=conversation,
                    status="submitted",
                    approved_at=at,
                    build=BuildFactory(license=license),
                    submitted_at=at,
                )
            else:
                BuildManifestFactory(conversation=conversation)
    return customer


def test_the_views_equal_the_oracles_unfolded_folded_and_after_late_changes(history):
    """Each view equals its released definition over the raw tables: before any fold, after folding, after late
    changes to folded days (marked, read live), and after the next fold (no re-fold window)."""
    assert sum(row[3] for row in sql_rows("SELECT * FROM conversation_performance_summary")) > 0
    last_of_9 = _on(9).order_by("-started_at").first()  # its intents are on day 8 (past midnight)
    last_of_9.extractions.update(created_at=_midnight(7))  # and its extractions on day 7 (nothing folded yet)
    assert_views_equal_the_oracles()
    assert fold() > 0
    assert not dirty_days()
    assert sql_rows("SELECT count(*) FROM intent_daily")[0][0] > 0
    assert_views_equal_the_oracles()

    yesterday = _on(1).first()
    MessageFactory(conversation=yesterday, prompt_tokens=0, completion_tokens=0, given_cost=Decimal(0))  # count only
    old_intent = ConversationIntent.objects.filter(conversation__in=_on(3)).first()  # day 3: only this
    ConversationIntent.objects.filter(pk=old_intent.pk).update(intent="status", confidence=Decimal("0.111"))
    late_intent = IntentFactory(conversation=_on(40).first(), intent="cancel")
    ConversationIntent.objects.filter(pk=late_intent.pk).update(created_at=_midnight(41) + dt.timedelta(hours=1))
    unverified = RequirementExtraction.objects.filter(conversation__in=_on(40), verification="unverified").first()
    RequirementExtraction.objects.filter(pk=unverified.pk).update(verification="correct")
    RequirementExtraction.objects.filter(
        pk=RequirementExtraction.objects.filter(conversation__in=_on(1)).first().pk
    ).delete()
    Conversation.objects.filter(pk=last_of_9.pk).update(deleted_at=timezone.now())  # marks 9, 8 and 7
    draft = BuildManifest.objects.filter(conversation__in=_on(2), status="draft").first()
    BuildManifest.objects.filter(pk=draft.pk).update(
        status="submitted", approved_at=timezone.now(), submitted_at=timezone.now(), build=BuildFactory()
    )
    Conversation.objects.filter(pk=_on(9, model="m1").first().pk).update(model="m3")
    Conversation.objects.filter(pk=_on(0).first().pk).update(status="completed")  # touches no figure, marks nothing

    # Day 41: the intent added late only; 40: the verification only; 3: the intent edited only; 2: the submission
    # only; 9, 8, 7: the deletion (and a model changed on 9); 1: the message and the extraction deleted.
    assert dirty_days() == [_midnight(d).date() for d in (41, 40, 9, 8, 7, 3, 2, 1)]
    assert_views_equal_the_oracles()
    fold()
    assert not dirty_days()
    assert_views_equal_the_oracles()


def test_the_views_read_the_rollups_for_folded_days(history):
    """After folding, a folded day's figures come from the rollups: rows removed behind the triggers' back change
    no view, while the oracles see them gone; today's rows are read live."""
    fold()
    before = {view: _rows(f"SELECT * FROM {view}") for view in ORACLES}
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for table, column in (
            ("conversation_intents", "created_at"),
            ("requirement_extractions", "created_at"),
        ):
            cursor.execute(f"DELETE FROM {table} WHERE {column} < %s", [_midnight(1)])
        cursor.execute(
            "UPDATE conversations SET message_count = message_count + 5 WHERE started_at < %s", [_midnight(1)]
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
    for view, oracle in ORACLES.items():
        assert _rows(f"SELECT * FROM {view}") == before[view], view
        assert _rows(oracle) != before[view], view
    IntentFactory(conversation=_on(0).first(), intent="other")  # today: read live at once
    assert [row[2] for row in sql_rows("SELECT * FROM intent_analytics WHERE intent = 'other'")] == ["other"]


def test_an_hourly_fold_with_nothing_marked_touches_nothing(history):
    """Once caught up, the hourly task folds no day and rewrites no row of the rollups or of their state; a mark
    makes the next run fold exactly that day."""
    fold()
    tables = (*ROLLUPS, "conversation_daily_state")

    def versions():
        return {table: _rows(f"SELECT ctid, * FROM {table}") for table in tables}

    before = versions()
    assert all(before[table] for table in tables)
    assert services.conversation_daily_fold() == 0
    assert versions() == before
    unverified = RequirementExtraction.objects.filter(conversation__in=_on(3), verification="unverified").first()
    RequirementExtraction.objects.filter(pk=unverified.pk).update(verification="incorrect")
    assert dirty_days() == [_midnight(3).date()]
    assert services.conversation_daily_fold() == 1
    assert not dirty_days()
    after = versions()
    for table in ROLLUPS:
        changed = {row[1] for row in set(after[table]) ^ set(before[table])}
        assert changed == {str(_midnight(3).date())}, table
    assert_views_equal_the_oracles()


def test_truncating_intents_resets_every_rollup(history):
    """TRUNCATE of a table the rollups read empties them and the state: everything is read live, still equal."""
    fold()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the fixture's deferred foreign-key checks run first
        cursor.execute("TRUNCATE conversation_intents")
    assert [sql_rows(f"SELECT count(*) FROM {table}")[0][0] for table in ROLLUPS] == [0, 0, 0, 0]
    assert sql_rows("SELECT folded_through FROM conversation_daily_state") == [(None,)]
    assert_views_equal_the_oracles()


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_a_populated_database():
    """Migrating a database whose conversation_daily is folded (by 0011's fold) backfills the folded days of the new
    rollups: every view gives the same rows before and after, and equals its oracle; the next fold has nothing to
    do."""
    call_command("migrate", "intake", "0011", verbosity=0)
    try:
        make_history()
        # (Its state row may be missing: the flush after an earlier transactional test empties the table.)
        while sql_rows("SELECT folded_through FROM conversation_daily_state") != [(_midnight(1).date(),)]:
            sql_rows("SELECT fold_conversation_daily(31, 0, interval '0')")
        before = {view: _rows(f"SELECT * FROM {view}") for view in ORACLES}
    finally:
        call_command("migrate", verbosity=0)  # every app: operations 0006 depends on intake's last
    assert {view: _rows(f"SELECT * FROM {view}") for view in ORACLES} == before
    assert_views_equal_the_oracles()
    (through,) = sql_rows("SELECT folded_through FROM conversation_daily_state")[0]
    for table in ROLLUPS:
        assert sql_rows(f"SELECT max(day) FROM {table}")[0][0] == through, table
    assert sql_rows("SELECT fold_conversation_daily(31, 0, interval '0')") == [(0,)]
