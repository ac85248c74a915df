"""The build-number migrations: builds that existed before are numbered 1..n in id order without touching their
updated_at, new builds continue after them, and the migrations reverse and apply again."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.licensing.factories import LicenseFactory

BEFORE = [("builds", "0013_cache_rollup")]
INSERT_OLD_BUILDS = """
INSERT INTO build_queue (customer_id, license_id, manifest, manifest_hash, priority, status, retry_count,
                         max_retries, timeout_seconds, heartbeat_timeout_seconds, cancel_requested, source, cache_hit,
                         progress, updated_at)
SELECT %(customer)s, %(license)s, jsonb_build_object('n', g), repeat('a', 64), 5, 'failed', 0, 3, 3600, 120, false,
       'api', false, 0, '2020-01-01'
FROM generate_series(1, %(n)s) g
"""


@pytest.mark.django_db(transaction=True)
def test_existing_builds_are_numbered_in_id_order_and_new_ones_continue():
    """Back at 0013, 25 builds exist; forward, they hold 1..25 in id order (batches of 10 here), their updated_at
    untouched, the column is NOT NULL and unique, and the next build gets 26."""
    migration = importlib.import_module("builds.migrations.0026_build_number_backfill")
    license = LicenseFactory()
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    with connection.cursor() as cursor:
        cursor.execute(INSERT_OLD_BUILDS, {**_ids(license), "n": 25})
    batch, migration.BATCH = migration.BATCH, 10
    try:
        MigrationExecutor(connection).migrate(leaves)
    finally:
        migration.BATCH = batch
    with connection.cursor() as cursor:
        cursor.execute("SELECT build_number FROM build_queue ORDER BY id")
        assert [row[0] for row in cursor.fetchall()] == list(range(1, 26))
        cursor.execute("SELECT count(*) FROM build_queue WHERE updated_at <> '2020-01-01'")
        assert cursor.fetchone()[0] == 0
        cursor.execute(INSERT_OLD_BUILDS + " RETURNING build_number", {**_ids(license), "n": 1})
        assert cursor.fetchone()[0] == 26
        cursor.execute(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'build_queue'::regclass AND attname = 'build_number'"
        )
        assert cursor.fetchone()[0] is True
        cursor.execute("SELECT to_regclass('build_queue_build_number_key'), to_regclass('build_queue_error_fts')")
        assert None not in cursor.fetchone()


def _ids(license) -> dict:
    return {"customer": license.customer_id, "license": license.pk}
