"""Build output against a concurrent finish, with real connections: output written in an open transaction holds
the build (its completion waits), and output after a concurrent completion is refused (HN302), never attached to a
build its worker no longer holds."""

import threading
import time

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from builds.models import Build, BuildLogChunk
from tests.builds.factories import BuildFactory
from tests.conftest import database_url

pytestmark = pytest.mark.django_db(transaction=True)
WORKER = "host-1/0"


def _running_build():
    build = BuildFactory(status="running", worker_id=WORKER, started_at=timezone.now())
    connection.close()
    return build


def test_a_completion_waits_for_output_in_an_open_transaction():
    """While a transaction that appended a log chunk is open, complete_build on another connection waits; when the
    append commits, the completion goes ahead and the chunk belongs to the finished build."""
    build = _running_build()
    url = database_url()
    finished = {}
    with psycopg.connect(url) as writer, psycopg.connect(url) as finisher:
        writer.execute("SELECT append_build_log(%s, %s, 'last words\n')", [build.pk, WORKER])  # transaction open

        def complete():
            finished["done"] = finisher.execute(
                "SELECT complete_build(%s, %s, false, NULL, NULL, 'boom')", [build.pk, WORKER]
            ).fetchone()[0]
            finisher.commit()
            finished["at"] = time.monotonic()

        thread = threading.Thread(target=complete)
        thread.start()
        time.sleep(0.5)
        assert "done" not in finished, "complete_build waits for the output's FOR SHARE lock"
        committed_at = time.monotonic()
        writer.commit()
        thread.join(10)
    assert finished["done"] is True and finished["at"] >= committed_at
    assert Build.objects.get(pk=build.pk).status == "failed"
    assert list(BuildLogChunk.objects.filter(build_id=build.pk).values_list("chunk", flat=True)) == ["last words\n"]


def test_output_after_a_concurrent_completion_is_refused():
    """Output racing a completion that commits first waits for it, then raises HN302 and writes nothing."""
    build = _running_build()
    url = database_url()
    outcome = {}
    with psycopg.connect(url) as finisher, psycopg.connect(url) as writer:
        finisher.execute("SELECT complete_build(%s, %s, false, NULL, NULL, 'boom')", [build.pk, WORKER])

        def append():
            try:
                writer.execute("SELECT append_build_log(%s, %s, 'too late\n')", [build.pk, WORKER])
                outcome["result"] = "written"
            except psycopg.Error as error:
                outcome["result"] = error.sqlstate
            writer.rollback()

        thread = threading.Thread(target=append)
        thread.start()
        time.sleep(0.5)
        assert "result" not in outcome, "the append waits for the completing transaction"
        finisher.commit()
        thread.join(10)
    assert outcome["result"] == "HN302"
    assert not BuildLogChunk.objects.filter(build_id=build.pk).exists()
