"""The hourly fold of the cache access rollup reads only the rows it folds (builds.0040_cache_fold): its cost
follows the lookups since the last fold, not every (customer, entry) pair ever looked up."""

import uuid

import pytest

from builds.models import BuildCacheAccessRollup
from tests.conftest import nested_plans, plan_of
from tests.conftest import sql_rows as _sql

pytestmark = pytest.mark.django_db

FOLDED = 20_000
# The rollup is kept per UTC month (builds.0041_cache_month_rollup): these rows are this month's.
MONTH = "date_trunc('month', now(), 'UTC')"


@pytest.fixture
def folded_history():
    """FOLDED folded rows (shard -1), as years of lookups leave, and statistics that say so."""
    _sql(
        "INSERT INTO build_cache_access_rollup (month, customer_id, cache_entry_id, shard, hits, misses)"
        f" SELECT {MONTH}, gen_random_uuid(), gen_random_uuid(), -1, 1 + g %% 5, g %% 3 FROM generate_series(1, %s) g",
        [FOLDED],
    )
    _sql("ANALYZE build_cache_access_rollup")


def _delta(customer, entry, shard, hits, misses):
    _sql(
        "INSERT INTO build_cache_access_rollup (month, customer_id, cache_entry_id, shard, hits, misses)"
        f" VALUES ({MONTH}, %s, %s, %s, %s, %s)",
        [customer, entry, shard, hits, misses],
    )


def test_the_fold_reads_the_shards_rows_through_their_index_and_no_whole_table(folded_history):
    """Neither of the fold's statements scans the rollup: the shards' rows come from build_cache_access_delta_idx,
    and empty rows are looked for among the rows just folded. (The rollup is partitioned by month: the empty
    partitions of the months ahead, zero pages, may be read whole.)"""
    _delta(uuid.uuid4(), uuid.uuid4(), 3, 2, 1)
    holding = [name for (name,) in _sql("SELECT DISTINCT tableoid::regclass::text FROM build_cache_access_rollup")]
    assert holding
    with nested_plans() as plans:
        _sql("SELECT fold_cache_access_rollup()")
    text = "\n".join(plans)
    assert "build_cache_access_delta_idx" in plan_of(plans, "WITH moved AS")
    for partition in holding:
        assert f"Seq Scan on {partition} " not in text, text


def test_the_fold_sums_the_shards_and_drops_only_rows_it_emptied(folded_history):
    """Deltas in several shards add to the folded row; a pair whose lookups were all archived (its deltas net the
    folded counts to zero) leaves the rollup; the other folded rows are untouched."""
    customer, entry, emptied = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    _delta(customer, entry, -1, 5, 1)
    _delta(customer, entry, 2, 3, 0)
    _delta(customer, entry, 7, 1, 2)
    _delta(customer, emptied, -1, 2, 1)
    _delta(customer, emptied, 4, -2, -1)
    [(moved,)] = _sql("SELECT fold_cache_access_rollup()")
    assert moved == 3
    rows = BuildCacheAccessRollup.objects.filter(customer_id=customer).values_list("cache_entry_id", "shard", "hits")
    assert sorted(rows, key=str) == [(entry, -1, 9)]
    assert BuildCacheAccessRollup.objects.filter(customer_id=customer, cache_entry_id=entry).get().misses == 3
    assert BuildCacheAccessRollup.objects.count() == FOLDED + 1
    assert not BuildCacheAccessRollup.objects.filter(shard__gte=0).exists()
