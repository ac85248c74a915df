"""How build_queue stores builds (migration 0010_queue_perf): time-ordered ids and HOT heartbeats."""

import datetime as dt
import time
import uuid

import pytest
from django.db import connection

from builds.queue import services
from tests.licensing.factories import LicenseFactory


def _hot_updates() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_tuples_hot_updated('build_queue'::regclass)")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_build_ids_are_uuid_v7_in_enqueue_order():
    """New build ids are version-7 UUIDs carrying the enqueue time in milliseconds, so later builds sort after."""
    license = LicenseFactory(tier="asp")
    ids = []
    for n in range(3):
        ids.append(services.build_enqueue(customer=license.customer, manifest={"base": "alpine", "n": n}).pk)
        time.sleep(0.002)
    assert ids == sorted(ids)
    assert all(isinstance(i, uuid.UUID) and i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    stamped = dt.datetime.fromtimestamp(int(ids[0].hex[:12], 16) / 1000, tz=dt.UTC)
    assert abs(stamped - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


@pytest.mark.django_db
def test_a_heartbeat_is_a_hot_update():
    """A progress report changes no indexed column of build_queue, so it rewrites no index (a HOT update)."""
    license = LicenseFactory(tier="pro")
    build = services.build_enqueue(customer=license.customer, manifest={"base": "alpine"})
    services.build_claim(worker_id="w1")
    before = _hot_updates()
    assert services.build_update_progress(build=build, worker_id="w1", progress=40)
    assert _hot_updates() == before + 1
