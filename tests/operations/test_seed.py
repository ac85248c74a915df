"""seed_demo --scale six-months: valid rows, realistic shape, repeatable, idempotent (at a small fraction)."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from honua.models import MaintenanceRun
from operations import seed
from operations.seed import TABLES, generate

ANCHOR = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def fixed_anchor(monkeypatch):
    monkeypatch.setattr(seed, "seed_anchor", lambda: ANCHOR)


def _rows(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _fingerprint() -> dict[str, str]:
    """A digest of each table's generated content, leaving out identity ids (sequences move on)."""
    queries = {
        "customers": "SELECT md5(string_agg(c.id || c.name || l.tier, ',' ORDER BY c.id)) FROM customers c"
        " JOIN licenses l ON l.customer_id = c.id AND l.status = 'active'",
        "builds": "SELECT md5(string_agg(id || status || priority || created_at || manifest_hash || cache_hit,"
        " ',' ORDER BY id)) FROM build_queue",
        "conversations": "SELECT md5(string_agg(id || status || started_at || message_count || total_cost, ','"
        " ORDER BY id)) FROM conversations",
        "access_log": "SELECT md5(string_agg(customer_id || manifest_hash || hit || accessed_at, ','"
        " ORDER BY accessed_at, manifest_hash, customer_id)) FROM build_access_log",
        "events": "SELECT md5(string_agg(build_id || event_type || created_at, ',' ORDER BY build_id, created_at,"
        " event_type)) FROM build_events",
    }
    return {name: _rows(sql)[0][0] for name, sql in queries.items()}


def _generate_and_fingerprint(seed_value: int) -> dict[str, str]:
    with transaction.atomic():
        generate(seed=seed_value, fraction=0.005)
        fingerprint = _fingerprint()
        transaction.set_rollback(True)
    return fingerprint


@pytest.mark.django_db
def test_same_seed_gives_the_same_data_and_another_seed_does_not():
    """Generating twice with one seed yields identical rows; another seed yields different ones."""
    first = _generate_and_fingerprint(7)
    assert first == _generate_and_fingerprint(7)
    other = _generate_and_fingerprint(8)
    assert all(first[name] != other[name] for name in ("builds", "access_log", "events"))


@pytest.mark.django_db
def test_every_foreign_key_is_satisfied():
    """Every foreign key of the generated rows points at an existing row (triggers, RI included, were off)."""
    generate(seed=1, fraction=0.005)
    foreign_keys = _rows(
        """SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, fa.attname
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
        WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(%s)""",
        [list(TABLES)],
    )
    assert len(foreign_keys) >= 15
    for table, column, parent, parent_column in foreign_keys:
        [(orphans,)] = _rows(
            f'SELECT count(*) FROM {table} t WHERE t."{column}" IS NOT NULL AND NOT EXISTS'
            f' (SELECT 1 FROM {parent} p WHERE p."{parent_column}" = t."{column}")'
        )
        assert orphans == 0, f"{table}.{column} -> {parent}"


@pytest.mark.django_db
def test_shape_is_skewed_spread_over_six_months_with_a_mix_of_statuses():
    """Builds span about six months, the busiest customer has many times the median's builds, every status
    appears, conversation totals match their messages, and the cache access rollup matches the log."""
    generate(seed=2, fraction=0.02)
    [(first, last)] = _rows("SELECT min(created_at), max(created_at) FROM build_queue")
    assert dt.timedelta(days=150) < last - first <= dt.timedelta(days=183) and last <= ANCHOR
    counts = [n for (n,) in _rows("SELECT count(*) FROM build_queue GROUP BY customer_id ORDER BY 1 DESC")]
    assert counts[0] > 5 * counts[len(counts) // 2]
    statuses = {status for (status,) in _rows("SELECT DISTINCT status FROM build_queue")}
    assert {"succeeded", "failed", "cancelled", "timed_out"} <= statuses
    assert _rows("SELECT count(*) FROM build_queue WHERE cache_hit")[0][0] > 0
    [(mismatched,)] = _rows(
        "SELECT count(*) FROM conversations c WHERE message_count <>"
        " (SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id)"
    )
    assert mismatched == 0
    [(hits_mismatched,)] = _rows(
        "SELECT count(*) FROM build_cache_registry e WHERE hit_count <>"
        " (SELECT count(*) FROM build_access_log a WHERE a.cache_entry_id = e.id AND a.hit)"
    )
    assert hits_mismatched == 0
    rollup = "SELECT customer_id, cache_entry_id, sum(hits), sum(misses) FROM build_cache_access_rollup GROUP BY 1, 2"
    from_log = (
        "SELECT customer_id, cache_entry_id, count(*) FILTER (WHERE hit), count(*) FILTER (WHERE NOT hit)"
        " FROM build_access_log GROUP BY 1, 2"
    )
    assert sorted(_rows(rollup), key=str) == sorted(_rows(from_log), key=str)


@pytest.mark.django_db
def test_seed_demo_six_months_is_idempotent_and_shows_progress():
    """seed_demo --scale six-months draws a progress bar; a second run adds nothing and says so."""
    out = StringIO()
    call_command("seed_demo", "--scale", "six-months", "--fraction", "0.002", stdout=out)
    total = len(seed.steps())
    assert f"{total}/{total} done" in out.getvalue() and "1,000 build_queue" not in out.getvalue()
    builds = _rows("SELECT count(*) FROM build_queue")[0][0]
    again = StringIO()
    call_command("seed_demo", "--scale", "six-months", "--fraction", "0.002", stdout=again)
    assert "already loaded (100 six-months customers); nothing added" in again.getvalue()
    assert _rows("SELECT count(*) FROM build_queue")[0][0] == builds


@pytest.mark.django_db
def test_demo_scale_does_not_generate_the_six_month_set():
    """At the default demo scale the six-months loader adds nothing."""
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "six-months: nothing at this scale" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("fraction", ["0", "-0.5", "1.5"])
def test_fraction_out_of_range_is_refused(fraction):
    """--fraction outside (0, 1] is a clear error and loads nothing."""
    with pytest.raises(CommandError, match="--fraction must be greater than 0 and at most 1"):
        call_command("seed_demo", "--scale", "six-months", "--fraction", fraction, stdout=StringIO())
    assert _rows("SELECT count(*) FROM customers")[0][0] == 0


@pytest.mark.django_db(transaction=True)
def test_every_schedule_succeeds_on_seeded_data():
    """run_maintenance all succeeds on the six-month shape, and its cleanup removes what is past retention."""
    generate(seed=3, fraction=0.005)
    call_command("run_maintenance", "all", stdout=StringIO())
    assert not MaintenanceRun.objects.filter(outcome="failed").exists()
    [(old_events,)] = _rows("SELECT count(*) FROM build_events WHERE created_at < now() - interval '90 days'")
    [(old_access,)] = _rows("SELECT count(*) FROM build_access_log WHERE accessed_at < now() - interval '90 days'")
    assert old_events == old_access == 0
    assert _rows("SELECT count(*) FROM build_access_log_archive")[0][0] > 0


@pytest.mark.django_db
def test_ten_x_is_ten_times_six_months_at_the_same_fraction():
    """--scale ten-x: ten times the customers (same tier shares) and about ten times every volume of six-months
    at the same fraction, loaded by seed_demo like six-months."""
    fraction = 0.002
    counts = {}
    tiers = {}
    for scale in ("six-months", "ten-x"):
        with transaction.atomic():
            counts[scale] = generate(seed=5, fraction=fraction, scale=scale)
            tiers[scale] = dict(_rows("SELECT tier, count(*) FROM licenses WHERE status = 'active' GROUP BY tier"))
            transaction.set_rollback(True)
    one, ten = counts["six-months"], counts["ten-x"]
    assert ten["customers"] == 10 * one["customers"] == 1000
    assert {tier: 10 * n for tier, n in tiers["six-months"].items()} == tiers["ten-x"]
    for table in ("build_queue", "build_results", "build_events", "build_access_log", "conversations",
                  "conversation_messages", "build_cache_registry"):  # fmt: skip
        assert 7 <= ten[table] / one[table] <= 13, (table, one[table], ten[table])


@pytest.mark.django_db
def test_seed_demo_ten_x_loads_and_an_unknown_scale_is_refused():
    out = StringIO()
    call_command("seed_demo", "--scale", "ten-x", "--fraction", "0.001", stdout=out)
    assert "ten-x data in" in out.getvalue()
    assert _rows('SELECT count(*) FROM customers WHERE metadata @> \'{"scale": "ten-x"}\'')[0][0] == 1000
    again = StringIO()
    call_command("seed_demo", "--scale", "six-months", "--fraction", "0.001", stdout=again)
    assert "already loaded (1000 ten-x customers); nothing added" in again.getvalue()
    with pytest.raises(ValueError, match="scale must be one of six-months, ten-x"):
        generate(seed=1, fraction=0.001, scale="hundred-x")


@pytest.mark.django_db
def test_seeded_scheduler_counters_match_the_queue_so_the_claim_works():
    """The scheduler's counters equal the seeded queue (recounted like the triggers keep them), so the rescue of the
    seeded running builds (which a claim may run first) leaves every counter at zero or more."""
    generate(seed=4, fraction=0.05)
    counted = _rows(
        "SELECT license_id, count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status = 'queued')"
        " FROM build_queue WHERE status IN ('queued', 'running') GROUP BY 1 ORDER BY 1"
    )
    assert counted and _rows("SELECT license_id, running, queued FROM build_license_state ORDER BY 1") == counted
    assert _rows("SELECT handle_build_timeouts()")[0][0] > 0
    assert _rows("SELECT count(*) FROM build_license_state WHERE running < 0 OR queued < 0") == [(0,)]


@pytest.mark.django_db
def test_the_seed_folds_its_closed_days_into_the_daily_rollups():
    """The six-month seed leaves build_performance_summary and the dashboard reading folded days, as the hourly
    maintenance would: every closed day with finished builds has its rollup rows, every closed day with
    conversations its conversation_daily row (its last step), and nothing is left to fold."""
    generate(seed=5, fraction=0.01)
    folded_through = _rows("SELECT folded_through FROM build_daily_rollup_state WHERE id = 1")[0][0]
    assert folded_through is not None
    closed_days = _rows(
        "SELECT count(DISTINCT (finished_at AT TIME ZONE 'UTC')::date) FROM build_queue"
        " WHERE finished_at IS NOT NULL AND (finished_at AT TIME ZONE 'UTC')::date <= %s",
        [folded_through],
    )[0][0]
    assert closed_days > 100
    assert _rows("SELECT count(DISTINCT day) FROM build_daily_rollup")[0][0] == closed_days
    conversations_through = _rows("SELECT folded_through FROM conversation_daily_state WHERE id = 1")[0][0]
    assert conversations_through is not None
    conversation_days = _rows(
        "SELECT count(DISTINCT (started_at AT TIME ZONE 'UTC')::date) FROM conversations"
        " WHERE deleted_at IS NULL AND (started_at AT TIME ZONE 'UTC')::date <= %s",
        [conversations_through],
    )[0][0]
    assert conversation_days > 30
    assert _rows("SELECT count(*) FROM conversation_daily WHERE conversations > 0")[0][0] == conversation_days


@pytest.mark.django_db
def test_the_seeded_history_lands_in_monthly_partitions_not_the_default_ones():
    """Every seeded row is in its month's partition, so the first daily maintenance has nothing to move."""
    generate(seed=6, fraction=0.01)
    tables = ("build_events", "build_metrics", "build_access_log", "conversation_messages")
    for table in tables:
        assert _rows(f"SELECT count(*) FROM {table}")[0][0] > 0, table
        assert _rows(f"SELECT count(*) FROM {table}_default")[0][0] == 0, table


def _index_definitions() -> dict[str, tuple[str, bool]]:
    """Every index of the seeded tables and the cache access rollup (their partitions' included): definition and
    validity, by name."""
    return {
        name: (definition, valid)
        for name, definition, valid in _rows(
            """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisvalid
            FROM pg_index i
            WHERE i.indrelid IN (SELECT relid FROM unnest(%s::text[]) t, pg_partition_tree(t::regclass))""",
            [[*TABLES, *seed.ALSO_DEFER_INDEXES_OF]],
        )
    }


@pytest.mark.django_db
def test_the_indexes_set_aside_for_the_load_come_back_as_they_were():
    """The load drops the secondary indexes of the tables it fills (the cache access rollup's too) and builds them
    again: afterwards every index is there, valid, under its name and with its definition, and each partition (the
    seed's months included) has every index of its parent, attached."""
    before = _index_definitions()
    assert "build_cache_access_entry_idx" in before and "build_access_customer_idx" in before
    generate(seed=7, fraction=0.005)
    after = _index_definitions()
    assert {name: after.get(name) for name in before} == before
    assert all(valid for _, valid in after.values())
    unattached = _rows(
        """SELECT p.relid::regclass::text, pi.indexrelid::regclass::text
        FROM unnest(%s::text[]) t, pg_partition_tree(t::regclass) p
        JOIN pg_index pi ON pi.indrelid = p.parentrelid
        WHERE p.isleaf AND p.parentrelid IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_inherits h JOIN pg_index i ON i.indexrelid = h.inhrelid
            WHERE h.inhparent = pi.indexrelid AND i.indrelid = p.relid)""",
        [[*TABLES, *seed.ALSO_DEFER_INDEXES_OF]],
    )
    assert unattached == []
    assert len(after) > len(before)  # the seed's months, with their indexes


@pytest.mark.django_db
def test_the_cache_counters_and_rollup_equal_a_recount_of_the_seeded_log():
    """The cache entries' hit counts and last access (from the rows the log's INSERT returned) and the cache access
    rollup with its monthly totals equal what the triggers would keep: a recount from the log written."""
    generate(seed=8, fraction=0.01)
    counters = "SELECT id, hit_count, last_accessed_at FROM build_cache_registry ORDER BY id"
    from_log = """SELECT e.id, count(a.*), max(a.accessed_at) FROM build_cache_registry e
        LEFT JOIN build_access_log a ON a.cache_entry_id = e.id AND a.hit GROUP BY e.id ORDER BY e.id"""
    assert _rows("SELECT count(*) FROM build_cache_registry WHERE hit_count > 0")[0][0] > 50
    assert _rows(counters) == _rows(from_log)
    rollup = (
        "SELECT month, customer_id, cache_entry_id, shard, hits, misses FROM build_cache_access_rollup ORDER BY 1, 2, 3"
    )
    monthly = "SELECT month, customer_id, hits, misses, time_saved_ms FROM build_cache_access_monthly ORDER BY 1, 2"
    seeded = _rows(rollup), _rows(monthly)
    assert len(seeded[0]) > 1000
    _rows("SELECT cache_access_rollup_recount()")
    assert (_rows(rollup), _rows(monthly)) == seeded
