"""The cache's migrations reverse cleanly and apply again."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

CACHE_OBJECTS = ["manifest_hash", "record_cache_access", "register_build_in_cache", "get_cache_hit_rate"]


def _functions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname FROM pg_proc WHERE proname = ANY(%s)", [CACHE_OBJECTS])
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_cache_migrations_reverse_and_reapply():
    """Migrating builds back to 0002 drops the cache functions, views and counter table; forward restores them."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([("builds", "0002_quota_usage")])
    assert _functions() == set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('build_cache_hit_counters'), to_regclass('cache_statistics')")
        assert cursor.fetchone() == (None, None)
    executor = MigrationExecutor(connection)
    executor.migrate(leaves)
    assert _functions() == set(CACHE_OBJECTS)
