"""The dashboard's 24-hour and 7-day build activity (build_activity_hourly) and its 30-day cache figures
(build_cache_daily) from rollups of the closed days plus today's live rows (issue 15): every range gives exactly the
figures of the live queries they replace (kept here as oracles), for every customer and each one, before and after
folding, with activity on many days and hours including yesterday's last and today's first; late changes to a
folded day (a result recorded after midnight for yesterday, a lookup logged late, moved or deleted, a hit entry's
duration changed or the entry deleted) are read live at once and folded by the next fold. The hourly fold folds
only the days marked or newly closed (builds.0042): its rollups equal a fold from scratch, and with nothing marked
it writes no row."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build, BuildAccessLog, BuildCacheEntry
from console import selectors
from tests.builds.cache_factories import cached
from tests.console.test_activity_rollup import _midnight, _result, _served, dirty_days, fold, released
from tests.licensing.factories import LicenseFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC

# The released query of console.selectors.cache_activity: every lookup of the window, joined to its entry.
RELEASED_CACHE_SQL = """
SELECT date_trunc(%(kind)s, a.accessed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
       count(*) FILTER (WHERE a.hit) AS hits,
       count(*) FILTER (WHERE NOT a.hit) AS misses,
       coalesce(sum(e.build_duration_ms) FILTER (WHERE a.hit), 0) AS saved_ms
FROM build_access_log a
LEFT JOIN build_cache_registry e ON e.id = a.cache_entry_id AND a.hit
WHERE a.accessed_at >= %(start)s
GROUP BY 1
"""


def released_cache(win: selectors.Window) -> selectors.CacheActivity:
    """cache_activity as released: one pass over the window's lookups."""
    index = {bucket: i for i, bucket in enumerate(win.buckets)}
    hits, misses, saved = ([0] * len(win.buckets) for _ in range(3))
    with connection.cursor() as cursor:
        cursor.execute(RELEASED_CACHE_SQL, {"kind": win.kind, "start": win.start})
        for bucket, h, m, s in cursor.fetchall():
            i = index.get(bucket)
            if i is not None:
                hits[i], misses[i], saved[i] = h, m, int(s)
    return selectors.CacheActivity(window=win, hits=hits, misses=misses, saved_ms=saved)


def _past_hours(days_ago: int) -> list[dt.datetime]:
    """Times spread over a day's hours (first and last microsecond included), none after now."""
    day = _midnight(days_ago)
    offsets = [
        dt.timedelta(0),
        dt.timedelta(hours=3, minutes=7),
        dt.timedelta(hours=7, minutes=59),
        dt.timedelta(hours=12, seconds=1),
        dt.timedelta(hours=18, minutes=30),
        dt.timedelta(hours=23, minutes=59),
        dt.timedelta(days=1, microseconds=-1),
    ]
    now = timezone.now()
    return [day + o for o in offsets if day + o <= now]


def _lookups(entries, customer_id, at, *, n_hits=2, n_misses=1):
    rows = []
    for k, entry in enumerate(entries):
        for j in range(n_hits):
            rows.append(
                BuildAccessLog(
                    manifest_hash=entry.manifest_hash,
                    customer_id=customer_id,
                    cache_entry_id=entry.pk,
                    hit=True,
                    accessed_at=at + dt.timedelta(seconds=k + j),
                )
            )
    for j in range(n_misses):
        rows.append(
            BuildAccessLog(manifest_hash="f" * 64, customer_id=customer_id, hit=False, accessed_at=at, latency_us=j)
        )
    BuildAccessLog.objects.bulk_create(rows)


@pytest.fixture
def history():
    """Two customers' attempts, cache-served builds and cache lookups on many days and hours up to now: days 0
    (today) to 8, 29 and 34 (before the 30-day range), yesterday's last microsecond and today's first."""
    a, b = LicenseFactory(tier="pro"), LicenseFactory(tier="enterprise")
    entries = [cached(a), cached(b), cached(b)]
    BuildCacheEntry.objects.filter(pk=entries[0].pk).update(build_duration_ms=61_000)
    BuildCacheEntry.objects.filter(pk=entries[1].pk).update(build_duration_ms=3_600_000)
    BuildCacheEntry.objects.filter(pk=entries[2].pk).update(build_duration_ms=None)  # saves nothing known
    statuses = ("succeeded", "failed", "timed_out", "succeeded", "cancelled", "succeeded")
    for days_ago in (34, 29, 8, 7, 6, 5, 4, 3, 2, 1, 0):
        for k, at in enumerate(_past_hours(days_ago)):
            license = a if k % 2 else b
            wait = None if k == 4 else 50 * k + days_ago * 7
            _result(license, statuses[(k + days_ago) % 6], at, wait_ms=wait, duration_ms=1000 + 13 * k + days_ago)
            if k in (1, 5):
                _served(license, at)
            _lookups(entries[: 1 + (k + days_ago) % 3], license.customer_id, at, n_hits=1 + k % 2, n_misses=k % 3)
    return a, b, entries


WINDOW = 30


def _assert_all_equal(a, b):
    for key in ("1h", "24h", "7d", "30d"):
        for customer in (None, a.customer_id, b.customer_id):
            assert selectors.build_activity(key, customer_id=customer) == released(key, customer), (key, customer)
    win = selectors.window("day", WINDOW)
    assert selectors.cache_activity(win) == released_cache(win)


def _cache_rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT day, hits, misses, saved_ms FROM build_cache_daily ORDER BY day")
        return cursor.fetchall()


def _hour_rows():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id, hour, succeeded, failed, timed_out, cancelled, duration_ms_sum, timed, queue_wait_ms,"
            " cache_served FROM build_activity_hourly ORDER BY hour, customer_id NULLS FIRST"
        )
        return cursor.fetchall()


def test_every_range_equals_the_live_queries_before_and_after_folding(history):
    """Unfolded (all live), then folded through yesterday (rollups + today live): every bucket of the 1h, 24h, 7d
    and 30d ranges for all customers and each, and every day's cache hits, misses and time saved, are the live
    queries' figures; the rollups hold the closed days (hours with activity, one row over all customers each)."""
    a, b, _ = history
    win = selectors.window("day", WINDOW)
    assert sum(released_cache(win).hits) > 0 and released("24h").finished > 0 and released("7d").finished > 0
    _assert_all_equal(a, b)
    assert fold() > 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT (accessed_at AT TIME ZONE 'UTC')::date FROM build_access_log WHERE accessed_at < %s"
            " ORDER BY 1",
            [_midnight(0)],
        )
        assert [row[0] for row in _cache_rows()] == [row[0] for row in cursor.fetchall()]  # 34 days ago onwards
    yesterday = [row for row in _hour_rows() if row[0] is None and row[1] >= _midnight(1) and row[1] < _midnight(0)]
    assert len(yesterday) == 6  # 00, 03, 07, 12, 18 and 23 h (the last microsecond shares 23 h)
    _assert_all_equal(a, b)


def test_the_rollups_answer_closed_days_without_reading_the_log_or_results(history):
    """After folding, yesterday's hours and cache figures come from the rollups: yesterday's lookups and results
    removed behind the triggers' back do not change the figures, while the live queries' do."""
    fold()
    win = selectors.window("day", WINDOW)
    before_cache, before_24h = selectors.cache_activity(win), selectors.build_activity("24h")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # no trigger fires
        cursor.execute(
            "DELETE FROM build_access_log WHERE accessed_at >= %s AND accessed_at < %s", [_midnight(1), _midnight(0)]
        )
        cursor.execute(
            "DELETE FROM build_results WHERE created_at >= %s AND created_at < %s", [_midnight(1), _midnight(0)]
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
    assert selectors.cache_activity(win) == before_cache
    assert released_cache(win) != before_cache
    if released("24h").buckets[0] < _midnight(0):  # the 24 hours reach into yesterday (always, but for 00:xx)
        assert selectors.build_activity("24h") == before_24h


def test_late_changes_to_folded_days_are_read_live_then_refolded(history):
    """A result recorded after midnight for yesterday (a build that finished late), a cache hit logged for
    yesterday, a lookup moved to another day and one deleted, a hit entry's duration changed and an entry deleted:
    the days are marked, the figures equal the live queries' at once, and the next fold (no re-fold window)
    re-folds them: equal again, nothing left marked."""
    a, b, entries = history
    fold()
    assert not dirty_days()
    late = Build.objects.filter(customer_id=a.customer_id, finished_at__gte=_midnight(0)).first()
    from builds.models import BuildResult

    BuildResult.objects.create(
        build=late,
        status="succeeded",
        queue_wait_ms=777,
        duration_ms=4321,
        created_at=_midnight(0) - dt.timedelta(minutes=1),
    )
    _lookups([entries[1]], b.customer_id, _midnight(1) + dt.timedelta(hours=22), n_hits=3, n_misses=2)
    moved = BuildAccessLog.objects.filter(accessed_at__gte=_midnight(5), accessed_at__lt=_midnight(4)).first()
    BuildAccessLog.objects.filter(pk=moved.pk, accessed_at=moved.accessed_at).update(accessed_at=_midnight(6))
    gone = BuildAccessLog.objects.filter(accessed_at__gte=_midnight(3), accessed_at__lt=_midnight(2)).first()
    BuildAccessLog.objects.filter(pk=gone.pk, accessed_at=gone.accessed_at).delete()
    assert dirty_days() == [_midnight(d).date() for d in (6, 5, 3, 1)]
    _assert_all_equal(a, b)
    fold(refold_days=0)
    assert not dirty_days()
    _assert_all_equal(a, b)

    BuildCacheEntry.objects.filter(pk=entries[0].pk).update(build_duration_ms=99_000)
    assert dirty_days() == _hit_days(entries[0])  # every day it was hit, 34 days ago to yesterday
    _assert_all_equal(a, b)
    fold(refold_days=0)
    BuildCacheEntry.objects.filter(pk=entries[1].pk).delete()
    assert dirty_days()
    _assert_all_equal(a, b)
    fold(refold_days=0)
    assert not dirty_days()
    _assert_all_equal(a, b)


def _hit_days(entry) -> list[dt.date]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT (accessed_at AT TIME ZONE 'UTC')::date FROM build_access_log"
            " WHERE cache_entry_id = %s AND hit AND accessed_at < %s ORDER BY 1",
            [entry.pk, _midnight(0)],
        )
        return [row[0] for row in cursor.fetchall()]


def test_todays_lookups_mark_nothing_and_old_days_are_neither_marked_nor_kept(history):
    """Today's lookups (the hot path) mark no day; a lookup older than the days build_cache_daily keeps marks
    nothing, and the fold keeps only those days."""
    a, _, entries = history
    fold()
    _lookups(entries, a.customer_id, timezone.now(), n_hits=1, n_misses=1)
    _lookups(entries, a.customer_id, _midnight(45), n_hits=1, n_misses=1)
    assert not dirty_days()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO build_cache_daily (day, hits, misses, saved_ms) VALUES (%s, 1, 1, 1)", [_midnight(50).date()]
        )
    fold()
    assert min(row[0] for row in _cache_rows()) >= _midnight(40).date()


def test_refolding_gives_the_same_rows(history):
    """Folding the days again from scratch gives the same hourly and cache rows: the fold replaces each day whole."""
    fold()
    hours, cache = _hour_rows(), _cache_rows()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE build_daily_rollup_state SET folded_through = folded_through - 40")
    fold()
    assert _hour_rows() == hours
    assert _cache_rows() == cache


def test_truncating_the_log_empties_the_cache_rollup(history):
    """Emptying the access log leaves no lookup on any folded day."""
    fold()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE build_access_log")
    assert _cache_rows() == []
    win = selectors.window("day", WINDOW)
    assert selectors.cache_activity(win) == released_cache(win)


# --- the fold folds only dirty and newly closed days (builds/sql/0042_fold_dirty_days.sql) ------------------------

ROLLUP_QUERIES = {
    "build_daily_rollup": "SELECT customer_id, day, total_builds, succeeded, failed, timed_out, cancelled, cache_hits,"
    " success_rate, avg_duration_seconds, p50_duration_seconds, p95_duration_seconds, avg_queue_wait_seconds,"
    " p95_queue_wait_seconds, started_builds, duration_seconds_sum, queue_wait_seconds_sum FROM build_daily_rollup"
    " ORDER BY day, customer_id",
    "build_activity_daily": "SELECT customer_id, day, succeeded, failed, timed_out, cancelled, duration_ms_sum, timed,"
    " queue_wait_ms, wait_p50_ms, wait_p95_ms, cache_served FROM build_activity_daily"
    " ORDER BY day, customer_id NULLS FIRST",
    "build_activity_hourly": "SELECT customer_id, hour, succeeded, failed, timed_out, cancelled, duration_ms_sum,"
    " timed, queue_wait_ms, cache_served FROM build_activity_hourly ORDER BY hour, customer_id NULLS FIRST",
    "build_cache_daily": "SELECT day, hits, misses, saved_ms FROM build_cache_daily ORDER BY day",
}


def _rollups() -> dict[str, list[tuple]]:
    with connection.cursor() as cursor:
        result = {}
        for table, query in ROLLUP_QUERIES.items():
            cursor.execute(query)
            result[table] = cursor.fetchall()
        return result


DAY_OF_ROW = {
    "build_daily_rollup": "day",
    "build_activity_daily": "day",
    "build_activity_hourly": "(hour AT TIME ZONE 'UTC')::date",
    "build_cache_daily": "day",
}


def _row_versions(*, except_day: dt.date | None = None) -> dict[str, set]:
    """Every rollup row's physical version (ctid), but those of ``except_day``: an update, or a delete and an
    insert, gives a row a new one. The state row's too."""
    with connection.cursor() as cursor:
        result = {}
        for table, day in DAY_OF_ROW.items():
            cursor.execute(f"SELECT ctid::text FROM {table} WHERE {day} IS DISTINCT FROM %s", [except_day])
            result[table] = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT ctid::text FROM build_daily_rollup_state")
        result["build_daily_rollup_state"] = {row[0] for row in cursor.fetchall()}
        return result


def hourly_fold() -> int:
    """One call as the hourly task makes it (its defaults: no re-fold window), with no grace period."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT fold_build_daily_rollup(p_max_days => 31, p_grace => interval '0')")
        return cursor.fetchone()[0]


def _late_changes(a, b, entries) -> None:
    """Late changes to folded days of every kind the triggers mark: a result and a cache-served build recorded
    for yesterday, a build of four days ago retried, a lookup logged late, one moved and one deleted, and a hit
    entry's build time changed."""
    from builds.models import BuildResult

    late = Build.objects.filter(customer_id=a.customer_id, finished_at__gte=_midnight(0)).first()
    BuildResult.objects.create(
        build=late, status="failed", queue_wait_ms=5, duration_ms=6, created_at=_midnight(0) - dt.timedelta(seconds=1)
    )
    _served(b, _midnight(1) + dt.timedelta(hours=4))
    retried = Build.objects.filter(finished_at__gte=_midnight(4), finished_at__lt=_midnight(3)).first()
    Build.objects.filter(pk=retried.pk).update(status="queued", finished_at=None, started_at=None)
    _lookups([entries[2]], a.customer_id, _midnight(2) + dt.timedelta(hours=5), n_hits=2, n_misses=1)
    moved = BuildAccessLog.objects.filter(accessed_at__gte=_midnight(7), accessed_at__lt=_midnight(6)).first()
    BuildAccessLog.objects.filter(pk=moved.pk, accessed_at=moved.accessed_at).update(accessed_at=_midnight(8))
    gone = BuildAccessLog.objects.filter(accessed_at__gte=_midnight(5), accessed_at__lt=_midnight(4)).first()
    BuildAccessLog.objects.filter(pk=gone.pk, accessed_at=gone.accessed_at).delete()
    BuildCacheEntry.objects.filter(pk=entries[1].pk).update(build_duration_ms=1_800_000)


def test_the_hourly_fold_after_late_changes_equals_a_full_refold(history):
    """Folded, then changed late on many past days, then folded as the hourly task does (dirty days only, no
    re-fold window): all four rollups equal a fold of every day from scratch (the oracle), nothing is left
    marked, and every panel equals its live query."""
    a, b, entries = history
    fold()
    _late_changes(a, b, entries)
    marked = len(dirty_days())
    assert marked >= 6
    assert hourly_fold() == marked
    assert not dirty_days()
    incremental = _rollups()
    assert all(incremental.values())
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM build_daily_rollup; DELETE FROM build_activity_daily; DELETE FROM build_activity_hourly;"
            " DELETE FROM build_cache_daily; UPDATE build_daily_rollup_state SET folded_through = NULL"
        )
    while hourly_fold():
        pass
    assert _rollups() == incremental
    _assert_all_equal(a, b)


def test_an_hourly_fold_with_nothing_dirty_touches_no_rollup_row(history):
    """Once caught up, an hourly fold with no day marked and no day newly closed folds nothing and writes no row
    of any rollup (nor the state row); after one late change it rewrites that day's rows and no other day's."""
    a, b, entries = history
    fold()
    before = _row_versions()
    assert hourly_fold() == 0
    assert _row_versions() == before
    assert hourly_fold() == 0
    assert _row_versions() == before

    changed_day = _midnight(3).date()
    before = _row_versions(except_day=changed_day)
    hits_before = {day: hits for day, hits, _, _ in _cache_rows()}
    _lookups([entries[0]], a.customer_id, _midnight(3) + dt.timedelta(hours=1), n_hits=1, n_misses=1)
    assert dirty_days() == [changed_day]
    assert hourly_fold() == 1
    assert _row_versions(except_day=changed_day) == before
    assert {day: hits for day, hits, _, _ in _cache_rows()} == {
        **hits_before,
        changed_day: hits_before[changed_day] + 1,
    }
    _assert_all_equal(a, b)


# --- conversations -----------------------------------------------------------------------------------------------


def released_conversations(win: selectors.Window) -> selectors.ConversationActivity:
    """conversation_activity as released: one pass over the window's conversations."""
    from django.db.models import Avg, Count, F, Sum
    from django.db.models.functions import Trunc

    from intake.models import Conversation
    from intake.selectors import messages_unpriced_count

    index = {bucket: i for i, bucket in enumerate(win.buckets)}
    n = len(win.buckets)
    counts, tokens, cost = [0] * n, [0] * n, [0.0] * n
    satisfaction: list = [None] * n
    rows = (
        Conversation.objects.filter(started_at__gte=win.start, deleted_at__isnull=True)
        .annotate(bucket=Trunc("started_at", win.kind, tzinfo=UTC))
        .values("bucket")
        .annotate(
            n=Count("*"),
            tokens=Sum(F("prompt_tokens") + F("completion_tokens")),
            cost=Sum("total_cost"),
            satisfaction=Avg("satisfaction_score"),
        )
        .order_by()
    )
    for row in rows:
        i = index.get(row["bucket"])
        if i is not None:
            counts[i], tokens[i] = row["n"], row["tokens"] or 0
            cost[i] = float(row["cost"] or 0)
            satisfaction[i] = float(row["satisfaction"]) if row["satisfaction"] is not None else None
    return selectors.ConversationActivity(
        window=win,
        conversations=counts,
        tokens=tokens,
        cost=cost,
        satisfaction=satisfaction,
        unpriced_messages=messages_unpriced_count(since=win.start),
    )


def fold_conversations(refold_days=2):
    """Folds (no grace period) until yesterday is folded; the days folded."""
    total = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT fold_conversation_daily(31, %s, interval '0')", [refold_days])
            total += cursor.fetchone()[0]
            cursor.execute("SELECT folded_through FROM conversation_daily_state")
            if cursor.fetchone()[0] == _midnight(1).date():
                return total


def conversation_dirty_days():
    with connection.cursor() as cursor:
        cursor.execute("SELECT day FROM conversation_daily_dirty ORDER BY day")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def conversations():
    """Conversations started on many days up to now (first and last microseconds of days), with tokens, costs to
    the micro-dollar, scores on some (an uneven average), and a deleted one on each day."""
    from decimal import Decimal

    from intake.models import Conversation
    from tests.intake.factories import ConversationFactory

    made = []
    for days_ago in (34, 29, 9, 5, 2, 1, 0):
        for k, at in enumerate(_past_hours(days_ago)):
            conversation = ConversationFactory()
            Conversation.objects.filter(pk=conversation.pk).update(
                started_at=at,
                prompt_tokens=1000 * k + days_ago,
                completion_tokens=17 * k,
                total_cost=Decimal("0.000001") * (k + 1) + Decimal(days_ago) / 7,
                satisfaction_score=(k % 5) + 1 if k % 3 else None,
                deleted_at=at if k == 2 else None,
            )
            made.append(conversation)
    return made


def test_conversations_equal_the_live_query_before_and_after_folding_and_after_late_changes(conversations):
    """Every day's conversations, tokens, cost and average satisfaction equal the live query's: unfolded, folded,
    and after late changes to folded days (tokens of a message added today to yesterday's conversation, a score
    given late, a soft delete, a purge, a conversation moved to another day), which are marked, read live, and
    re-folded by the next fold."""
    from intake.models import Conversation

    win = selectors.window("day", WINDOW)
    assert sum(released_conversations(win).conversations) > 0
    assert selectors.conversation_activity(win) == released_conversations(win)
    assert fold_conversations() > 0
    assert selectors.conversation_activity(win) == released_conversations(win)
    assert not conversation_dirty_days()

    def on(days_ago):
        return Conversation.objects.filter(
            started_at__gte=_midnight(days_ago), started_at__lt=_midnight(days_ago - 1), deleted_at__isnull=True
        )

    yesterday = on(1).first()
    Conversation.objects.filter(pk=yesterday.pk).update(prompt_tokens=yesterday.prompt_tokens + 500)
    on(2).filter(satisfaction_score__isnull=True).update(satisfaction_score=4)
    on(5).filter(pk=on(5).first().pk).update(deleted_at=timezone.now())
    Conversation.objects.filter(pk=on(9).first().pk).delete()
    Conversation.objects.filter(pk=on(29).first().pk).update(started_at=_midnight(28))
    Conversation.objects.filter(pk=on(0).first().pk).update(status="completed")  # touches no figure, marks nothing
    assert conversation_dirty_days() == [_midnight(d).date() for d in (29, 28, 9, 5, 2, 1)]
    assert selectors.conversation_activity(win) == released_conversations(win)
    fold_conversations(refold_days=0)
    assert not conversation_dirty_days()
    assert selectors.conversation_activity(win) == released_conversations(win)


def test_the_conversation_rollup_answers_closed_days_and_refolds_the_same(conversations):
    """After folding, closed days come from conversation_daily (a day's conversations removed behind the triggers'
    back change nothing); folding again from scratch gives the same rows."""
    fold_conversations()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM conversation_daily ORDER BY day")
        first = [row[:-1] for row in cursor.fetchall()]  # without folded_at
    win = selectors.window("day", WINDOW)
    before = selectors.conversation_activity(win)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "DELETE FROM conversations WHERE started_at >= %s AND started_at < %s", [_midnight(5), _midnight(4)]
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
    assert selectors.conversation_activity(win) == before
    assert released_conversations(win) != before
    with connection.cursor() as cursor:
        cursor.execute("UPDATE conversation_daily_state SET folded_through = folded_through - 40")
    fold_conversations()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM conversation_daily WHERE day <> %s ORDER BY day", [_midnight(5).date()])
        assert [row[:-1] for row in cursor.fetchall()] == [row for row in first if row[0] != _midnight(5).date()]


def test_the_hourly_task_folds_conversations_in_batches_and_bad_arguments_change_nothing(conversations):
    """run_maintenance's conversation_fold_daily folds every closed day (in 31-day batches) and a second run with
    nothing marked folds nothing; a bad argument is refused with a clear error and folds nothing."""
    from django.db import DatabaseError, transaction

    from intake import services

    with connection.cursor() as cursor:  # as before the first fold (the migration folded the empty history)
        cursor.execute("UPDATE conversation_daily_state SET folded_through = NULL")
        cursor.execute("DELETE FROM conversation_daily_dirty")
    assert services.conversation_daily_backlog() == 0  # nothing folded yet: the fold finds the first day
    assert services.conversation_daily_fold() > 31
    assert services.conversation_daily_backlog() == 0
    assert services.conversation_daily_fold() == 0  # nothing new, nothing marked: no re-fold window
    win = selectors.window("day", WINDOW)
    assert selectors.conversation_activity(win) == released_conversations(win)
    with connection.cursor() as cursor:
        cursor.execute("SELECT folded_through FROM conversation_daily_state")
        (through,) = cursor.fetchone()
        with pytest.raises(DatabaseError, match="max_days >= 1"), transaction.atomic():
            cursor.execute("SELECT fold_conversation_daily(0)")
        cursor.execute("SELECT folded_through FROM conversation_daily_state")
        assert cursor.fetchone()[0] == through


def test_without_a_state_row_every_panel_reads_live(history, conversations):
    """The rollups' state rows gone (a test database flushed between transactional tests): every panel reads its
    tables live and still equals the live queries, instead of showing nothing."""
    a, b, _ = history
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM build_daily_rollup_state")
        cursor.execute("DELETE FROM conversation_daily_state")
    _assert_all_equal(a, b)
    win = selectors.window("day", WINDOW)
    assert selectors.conversation_activity(win) == released_conversations(win)
    assert sum(selectors.build_activity("24h").by_status["succeeded"]) > 0
