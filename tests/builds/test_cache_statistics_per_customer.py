"""cache_statistics read for one customer (builds.0046_cache_statistics_per_customer): the view gives the rows and
figures of its previous definition, whole and for each customer, and one customer's read touches that customer's
rows only, however many other customers there are."""

import random
import uuid

import pytest
from django.db import connection

from tests.conftest import sql_rows as _sql

# The view as builds.0041_cache_month_rollup defined it, frozen: the new definition changes its cost, not its rows.
OLD_VIEW = """
    WITH access AS (
        SELECT a.customer_id, sum(a.hits) AS hits, sum(a.misses) AS misses, sum(a.time_saved_ms) AS time_saved_ms
          FROM (SELECT m.customer_id, m.hits, m.misses, m.time_saved_ms
                  FROM build_cache_access_monthly m
                UNION ALL
                -- The lookups since the last fold, priced as they are read.
                SELECT r.customer_id, r.hits, r.misses, r.hits * coalesce(e.build_duration_ms, 0)
                  FROM build_cache_access_rollup r
                  LEFT JOIN build_cache_registry e ON e.id = r.cache_entry_id
                 WHERE r.shard >= 0) a
         GROUP BY a.customer_id
        HAVING sum(a.hits) + sum(a.misses) > 0
    ), storage AS (
        SELECT e.owner_id AS customer_id,
               count(*) AS entries,
               count(*) FILTER (WHERE e.visibility = 'shared') AS shared_entries,
               sum(e.size_bytes) AS bytes_stored
          FROM build_cache_registry e
         WHERE e.deleted_at IS NULL
         GROUP BY e.owner_id
    ), per_customer AS (
        SELECT coalesce(a.customer_id, s.customer_id) AS customer_id,
               coalesce(a.hits, 0) AS hits,
               coalesce(a.misses, 0) AS misses,
               coalesce(a.time_saved_ms, 0) AS time_saved_ms,
               coalesce(s.entries, 0) AS entries,
               coalesce(s.shared_entries, 0) AS shared_entries,
               coalesce(s.bytes_stored, 0) AS bytes_stored
          FROM access a
          FULL JOIN storage s ON s.customer_id = a.customer_id
    ), scoped AS (
        SELECT 'customer'::text AS scope, p.customer_id, p.hits, p.misses, p.time_saved_ms, p.entries,
               p.shared_entries, p.bytes_stored
          FROM per_customer p
        UNION ALL
        SELECT 'overall', NULL::uuid, coalesce(sum(p.hits), 0), coalesce(sum(p.misses), 0),
               coalesce(sum(p.time_saved_ms), 0), coalesce(sum(p.entries), 0), coalesce(sum(p.shared_entries), 0),
               coalesce(sum(p.bytes_stored), 0)
          FROM per_customer p
    )
    SELECT s.scope,
           s.customer_id,
           c.name AS customer_name,
           (s.hits + s.misses)::bigint AS lookups,
           s.hits::bigint AS hits,
           s.misses::bigint AS misses,
           CASE WHEN s.hits + s.misses > 0 THEN s.hits / (s.hits + s.misses) ELSE 0 END AS hit_rate,
           s.entries::bigint AS entries,
           s.shared_entries::bigint AS shared_entries,
           s.bytes_stored::bigint AS bytes_stored,
           s.time_saved_ms::bigint AS time_saved_ms,
           make_interval(secs => s.time_saved_ms / 1000.0) AS time_saved,
           coalesce(s.customer_id::text, 'overall') AS id
      FROM scoped s
      LEFT JOIN customers c ON c.id = s.customer_id
"""

MONTH = "date_trunc('month', now(), 'UTC') - make_interval(months => %s)"


def customer(*, deleted: bool = False) -> uuid.UUID:
    """A customer (soft-deleted with ``deleted``)."""
    return _sql(
        "INSERT INTO customers (name, contact_name, contact_email, publishes_to_shared_cache, metadata, deleted_at)"
        " VALUES ('c-' || gen_random_uuid(), 'Contact', 'contact@example.com', false, '{}',"
        " CASE WHEN %s THEN now() END) RETURNING id",
        [deleted],
    )[0][0]


def entry(owner, *, size: int, duration_ms: int | None = 1000, shared: bool = False, deleted: bool = False):
    """A cache entry of ``owner``, live or soft-deleted."""
    digest = uuid.uuid4().hex * 2
    return _sql(
        "INSERT INTO build_cache_registry (manifest_hash, visibility, image_reference, image_digest, architectures,"
        " size_bytes, content_sha256, build_duration_ms, hit_count, owner_id, deleted_at)"
        " VALUES (%s, %s, 'registry.example/app:1', 'sha256:' || %s, '{amd64}', %s, %s, %s, 0, %s,"
        " CASE WHEN %s THEN now() END) RETURNING id",
        [digest, "shared" if shared else "private", digest, size, digest, duration_ms, owner, deleted],
    )[0][0]


def month(customer_id, months_ago: int, hits: int, misses: int, saved_ms: int) -> None:
    """A customer's folded month (build_cache_access_monthly)."""
    _sql(
        "INSERT INTO build_cache_access_monthly (month, customer_id, hits, misses, time_saved_ms)"
        f" VALUES ({MONTH}, %s, %s, %s, %s)",
        [months_ago, customer_id, hits, misses, saved_ms],
    )


def shard(customer_id, entry_id, shard_no: int, hits: int, misses: int, months_ago: int = 0) -> None:
    """A row of the access rollup: a shard not folded yet (0..63, negative counts after an archive batch), or a
    folded row (-1), which the months already count."""
    _sql(
        "INSERT INTO build_cache_access_rollup (month, customer_id, cache_entry_id, shard, hits, misses)"
        f" VALUES ({MONTH}, %s, %s, %s, %s, %s)",
        [months_ago, customer_id, entry_id, shard_no, hits, misses],
    )


def new_rows(where: str = "", params=()) -> list[str]:
    return sorted(row[0] for row in _sql(f"SELECT v::text FROM cache_statistics v {where}", params))


def old_rows(where: str = "", params=()) -> list[str]:
    return sorted(row[0] for row in _sql(f"SELECT v::text FROM ({OLD_VIEW}) v {where}", params))


@pytest.mark.django_db
def test_the_view_gives_the_old_definitions_rows_whole_and_per_customer():
    """Storage only, access only, lookups that cancel out (hits + misses = 0, with and without entries), soft-deleted
    customers and entries, a purged customer, folded rows beside unfolded shards, entries without a duration or
    gone: the view's rows, as text, are the old definition's, read whole, per customer and the overall row alone."""
    storage_only = customer()
    entry(storage_only, size=700, shared=True)
    entry(storage_only, size=300)
    entry(storage_only, size=5_000, deleted=True)  # not stored any more

    access_only = customer()
    elsewhere = entry(storage_only, size=1, duration_ms=None)  # priced at 0
    gone = uuid.uuid4()  # an entry purged since: its hits save nothing
    month(access_only, 1, 5, 2, 9_000)
    month(access_only, 0, 1, 0, 1_000)
    shard(access_only, elsewhere, 3, 4, 0)
    shard(access_only, gone, 4, 2, 0)
    shard(access_only, None, 5, 0, 3)  # misses without an entry
    shard(access_only, elsewhere, -1, 1_000, 1_000)  # folded: in the months already

    cancelled = customer()  # an archive batch took back what the months count: hits + misses = 0
    priced = entry(cancelled, size=40, duration_ms=2_000)
    month(cancelled, 0, 3, 1, 3_000)
    shard(cancelled, priced, 7, -3, -1)  # the time saved would be 3,000 - 6,000 without the HAVING
    cancelled_bare = customer()  # the same without entries: no row at all
    month(cancelled_bare, 0, 2, 0, 2_000)
    shard(cancelled_bare, priced, 8, -2, 0)
    misses_only = customer()
    shard(misses_only, None, 9, 0, 4)

    deleted_customer = customer(deleted=True)
    deleted_entry = entry(deleted_customer, size=11, duration_ms=7_000, deleted=True)
    entry(deleted_customer, size=13, shared=True)
    shard(deleted_customer, deleted_entry, 10, 2, 0)  # a soft-deleted entry's hits still save its duration

    purged = uuid.uuid4()  # no row in customers any more: its lookups stay, without a name
    month(purged, 2, 6, 6, 60_000)
    customer()  # no cache activity: no row

    rng = random.Random(46)
    for _ in range(25):
        c = customer(deleted=rng.random() < 0.2)
        entries = [
            entry(
                c,
                size=rng.randrange(1, 10**6),
                duration_ms=rng.choice([None, 0, 1_500, 40_000]),
                shared=rng.random() < 0.3,
                deleted=rng.random() < 0.2,
            )
            for _ in range(rng.randrange(0, 4))
        ]
        for m in rng.sample(range(6), rng.randrange(0, 4)):
            month(c, m, rng.randrange(0, 50), rng.randrange(0, 50), rng.randrange(0, 10**6))
        for s in rng.sample(range(64), rng.randrange(0, 4)):
            target = rng.choice([*entries, None, uuid.uuid4(), elsewhere])
            shard(c, target, s, rng.randrange(-5, 20), rng.randrange(-5, 20), rng.randrange(0, 3))
    _sql("ANALYZE build_cache_access_monthly, build_cache_access_rollup, build_cache_registry, customers")

    assert new_rows() == old_rows()
    shown = {
        row[0]: row[1:] for row in _sql("SELECT customer_id, customer_name, lookups, entries FROM cache_statistics")
    }
    assert cancelled_bare not in shown and cancelled in shown and shown[cancelled][1:] == (0, 1)
    assert shown[purged][0] is None and shown[storage_only][1:] == (0, 3) and shown[misses_only][1:] == (4, 0)
    customers = [row[0] for row in _sql("SELECT id FROM customers")] + [purged, uuid.uuid4()]
    for customer_id in customers:
        where = ("WHERE customer_id = %s", [customer_id])
        assert new_rows(*where) == old_rows(*where), customer_id
    assert new_rows("WHERE id = 'overall'") == old_rows("WHERE id = 'overall'")
    assert len(new_rows("WHERE id = 'overall'")) == 1


def others(n: int) -> list[uuid.UUID]:
    """``n`` customers, each with five entries, three folded months, a folded row and two shards per entry not
    folded yet: the rows a customer's read must not touch when they are someone else's."""
    return [
        row[0]
        for row in _sql(
            """
            WITH c AS (
                INSERT INTO customers (name, contact_name, contact_email, publishes_to_shared_cache, metadata)
                SELECT 'c-' || gen_random_uuid(), 'Contact', 'contact@example.com', false, '{}'
                  FROM generate_series(1, %s)
                RETURNING id
            ), e AS (
                INSERT INTO build_cache_registry (manifest_hash, visibility, image_reference, image_digest,
                                                  architectures, size_bytes, content_sha256, build_duration_ms,
                                                  hit_count, owner_id)
                SELECT h.hash, CASE WHEN g = 1 THEN 'shared' ELSE 'private' END, 'registry.example/app:1',
                       'sha256:' || h.hash, '{amd64}', 1000 * g, h.hash, 1000, 0, c.id
                  FROM c CROSS JOIN generate_series(1, 5) g
                 CROSS JOIN LATERAL (SELECT encode(sha256((c.id::text || g)::bytea), 'hex') AS hash) h
                RETURNING id, owner_id
            ), m AS (
                INSERT INTO build_cache_access_monthly (month, customer_id, hits, misses, time_saved_ms)
                SELECT date_trunc('month', now(), 'UTC') - make_interval(months => g), c.id, 3, 1, 3000
                  FROM c CROSS JOIN generate_series(0, 2) g
            ), r AS (
                INSERT INTO build_cache_access_rollup (month, customer_id, cache_entry_id, shard, hits, misses)
                SELECT date_trunc('month', now(), 'UTC'), e.owner_id, e.id, s, 1, 1
                  FROM e CROSS JOIN generate_series(-1, 1) s
            )
            SELECT id FROM c
            """,
            [n],
        )
    ]


def customer_read_buffers(customer_id) -> int:
    """Shared buffers (hit + read) of the web layer's read of one customer's row, as executed."""
    _sql("ANALYZE build_cache_access_monthly, build_cache_access_rollup, build_cache_registry, customers")
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) SELECT * FROM cache_statistics WHERE customer_id = %s",
            [customer_id],
        )
        plan = cursor.fetchone()[0][0]["Plan"]
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


@pytest.mark.slow
@pytest.mark.django_db
def test_one_customers_read_does_not_grow_with_the_other_customers():
    """One customer's row costs the same buffers beside 300 other customers and beside 3,300 (their entries, months,
    folded rows and shards not folded yet): the read probes that customer's rows, it does not aggregate everyone's."""
    (customer_id,) = others(1)
    others(300)
    before = customer_read_buffers(customer_id)
    others(3_000)
    after = customer_read_buffers(customer_id)
    # A probe may find the customer's entries split over one more leaf page than before.
    assert after <= before + 3, (before, after)
    row = _sql(
        "SELECT lookups, hits, entries, shared_entries FROM cache_statistics WHERE customer_id = %s", [customer_id]
    )
    assert row == [(3 * 4 + 10 * 2, 3 * 3 + 10, 5, 1)]
