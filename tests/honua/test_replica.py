"""Reads from a streaming replica: a real primary and a real standby (the embedded PostgreSQL's binaries,
pg_basebackup -R) on loopback, and the router's rules against them (docs/operations.md, "Read replica")."""

import contextlib
import dataclasses
import json
import logging
import shutil
import socket
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connections, router, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from builds.queue import selectors as build_selectors
from builds.queue import services as build_services
from console import selectors as console_selectors
from honua import embedded_pg
from honua.database import REPLICA_ALIAS, database_aliases
from honua.routers import STICKY_COOKIE, health, read_alias, read_connection, replica_reads
from licensing.models import Customer
from tests.conftest import PROJECT_ROOT, run_manage
from tests.licensing.factories import CustomerFactory, LicenseFactory

pytestmark = pytest.mark.slow

REPLICA_PASSWORD = "not-a-real-secret-4f1c"  # trust authentication ignores it; it must never reach the log
MANIFEST = json.loads((PROJECT_ROOT / "tests" / "builds" / "golden" / "python-web.json").read_text())
SERVER_OPTIONS = "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c shared_buffers=16MB"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg(program: str, args: list[str], *, pgdata: Path | None = None) -> None:
    library, _ = embedded_pg._library()
    getattr(library._commands, program)(args, pgdata=pgdata, user=embedded_pg._run_as(), timeout=120)


@dataclasses.dataclass
class Pair:
    root: Path
    primary_port: int
    standby_port: int

    @property
    def primary_dir(self) -> Path:
        return self.root / "primary"

    @property
    def standby_dir(self) -> Path:
        return self.root / "standby"

    def url(self, port: int, password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"postgres://postgres{secret}@127.0.0.1:{port}/honua"

    def start_standby(self) -> None:
        options = f"{SERVER_OPTIONS} -p {self.standby_port}"
        _pg(
            "pg_ctl",
            ["-w", "-t", "60", "-o", options, "-l", str(self.root / "standby.log"), "start"],
            pgdata=self.standby_dir,
        )

    def stop_standby(self) -> None:
        _pg("pg_ctl", ["-w", "-m", "fast", "stop"], pgdata=self.standby_dir)

    def standby(self) -> psycopg.Connection:
        return psycopg.connect(f"host=127.0.0.1 port={self.standby_port} user=postgres dbname=honua", autocommit=True)

    def wait_for_replay(self, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.url(self.primary_port), autocommit=True) as primary:
            (target,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        deadline = time.monotonic() + timeout
        with self.standby() as standby:
            while True:
                (caught_up,) = standby.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [str(target)]
                ).fetchone()
                if caught_up:
                    return
                assert time.monotonic() < deadline, "the standby did not replay the primary's WAL in time"
                time.sleep(0.05)

    @contextlib.contextmanager
    def replay_paused(self):
        """The standby receives WAL but applies none of it: what is written meanwhile exists only on the primary."""
        with self.standby() as standby:
            standby.execute("SELECT pg_wal_replay_pause()")
            try:
                yield
            finally:
                standby.execute("SELECT pg_wal_replay_resume()")
        self.wait_for_replay()


@pytest.fixture(scope="module")
def pair():
    """A migrated primary and its streaming standby, started once for the module and removed afterwards."""
    root = PROJECT_ROOT / ".honua" / f"replica-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    pair = Pair(root=root, primary_port=_free_port(), standby_port=_free_port())
    try:
        pair.primary_dir.mkdir()
        if embedded_pg._run_as():
            embedded_pg._prepare_as_root(pair.primary_dir)
            shutil.chown(root, embedded_pg.SYSTEM_USER)
        _pg(
            "initdb",
            ["--no-sync", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-U", "postgres"],
            pgdata=pair.primary_dir,
        )
        options = f"{SERVER_OPTIONS} -p {pair.primary_port}"
        log = str(root / "primary.log")
        _pg("pg_ctl", ["-w", "-t", "60", "-o", options, "-l", log, "start"], pgdata=pair.primary_dir)
        with psycopg.connect(f"host=127.0.0.1 port={pair.primary_port} user=postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE honua")
        migrated = run_manage("migrate", "--verbosity", "0", env={"DATABASE_URL": pair.url(pair.primary_port)})
        assert migrated.returncode == 0, migrated.stderr
        host = ["-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres"]
        _pg("pg_basebackup", [*host, "-D", str(pair.standby_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"])
        pair.start_standby()
        yield pair
    finally:
        for data_dir in (pair.standby_dir, pair.primary_dir):
            if (data_dir / "postmaster.pid").exists():
                with contextlib.suppress(Exception):
                    _pg("pg_ctl", ["-w", "-m", "immediate", "stop"], pgdata=data_dir)
        shutil.rmtree(root, ignore_errors=True)


def _drop_connections(*aliases: str) -> None:
    for alias in aliases:
        if alias in connections.settings:
            with contextlib.suppress(AttributeError):
                connections[alias].close()
                del connections[alias]


@pytest.fixture(scope="module")
def routed(pair, django_db_blocker):
    """Django pointed at the pair for this module: ``default`` is the primary, ``replica`` the standby."""
    saved = dict(connections.settings)
    _drop_connections(*saved)
    aliases = database_aliases(
        pair.url(pair.primary_port), pair.url(pair.standby_port, REPLICA_PASSWORD), base_dir=PROJECT_ROOT
    )
    connections.settings.update(connections.configure_settings(aliases))
    try:
        with django_db_blocker.unblock():
            yield pair
    finally:
        _drop_connections(*connections.settings)
        connections.settings.clear()
        connections.settings.update(saved)


@pytest.fixture
def cluster(routed):
    """The pair with the replica's health forgotten (each test starts from "never checked")."""
    health.reset()
    routed.wait_for_replay()
    yield routed
    health.reset()


def _customer(name: str) -> Customer:
    return CustomerFactory(name=f"{name} {uuid.uuid4().hex[:6]}")


@pytest.mark.django_db
def test_without_a_replica_the_router_reads_and_writes_the_primary():
    """With no DATABASE_REPLICA_URL there is one alias and a replica_reads() block still reads the primary."""
    assert REPLICA_ALIAS not in connections.settings
    with replica_reads():
        assert read_alias() == "default"
        assert router.db_for_read(Customer) == "default"
    assert router.db_for_write(Customer) == "default"
    assert database_aliases("postgres://u@h/n", "", base_dir=PROJECT_ROOT).keys() == {"default"}


def test_migrations_never_run_on_the_replica(cluster):
    """allow_migrate says yes only for the primary; relations across the two aliases are allowed."""
    assert router.allow_migrate("default", "builds") is True
    assert router.allow_migrate(REPLICA_ALIAS, "builds") is False
    assert router.allow_relation(Customer(), Customer()) is True


def test_selectors_in_a_replica_scope_read_the_standby(cluster):
    """A selector inside replica_reads() queries the standby: it sees a row only once the standby replayed it."""
    with cluster.replay_paused():
        customer = _customer("Written while replay is paused")
        LicenseFactory(customer=customer)
        build_services.build_enqueue(customer=customer, manifest=MANIFEST)
        with replica_reads():
            with read_connection().cursor() as cursor:
                cursor.execute("SELECT pg_is_in_recovery(), current_setting('port')::int")
                assert cursor.fetchone() == (True, cluster.standby_port)
            with CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica:
                assert not build_selectors.builds_for_customer(customer=customer).exists()
                assert customer.name not in dict(console_selectors.customers_for_filter()).values()
            assert len(on_replica) == 2
        # Outside a scope the same selectors read the primary, which has the rows.
        assert build_selectors.builds_for_customer(customer=customer).count() == 1
    with replica_reads():
        assert build_selectors.builds_for_customer(customer=customer).count() == 1
        assert customer.name in dict(console_selectors.customers_for_filter()).values()


def test_writes_and_the_sql_api_go_to_the_primary_and_pin_the_scope(cluster):
    """Inside a scope a write or an SQL API call runs on the primary, and every later read of that scope does too:
    it reads its own writes although the standby has not replayed them."""
    customer = _customer("Pinned")
    LicenseFactory(customer=customer)
    cluster.wait_for_replay()
    with cluster.replay_paused(), replica_reads():
        assert read_alias() == REPLICA_ALIAS
        with (
            CaptureQueriesContext(connections["default"]) as on_primary,
            CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica,
        ):
            build = build_services.build_enqueue(customer=customer, manifest=MANIFEST)
            assert read_alias() == "default"
            assert list(build_selectors.builds_for_customer(customer=customer)) == [build]
        assert any("enqueue_build" in query["sql"] for query in on_primary.captured_queries)
        assert len(on_replica) == 0


def test_a_transaction_on_the_primary_reads_the_primary(cluster):
    """Inside an atomic block on the primary, a replica scope reads the primary (the block's own writes)."""
    with cluster.replay_paused(), transaction.atomic():
        customer = _customer("In a transaction")
        with replica_reads(), CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica:
            assert read_alias() == "default"
            assert customer.name in dict(console_selectors.customers_for_filter()).values()
        assert len(on_replica) == 0


def test_admin_changelist_and_dashboard_read_the_replica_and_a_post_sticks_to_the_primary(cluster, client):
    """A changelist's GET and the dashboard read the standby; a change form reads the primary; after a POST the
    browser reads the primary (the sticky cookie), so it sees what it saved."""
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", "a@example.com", "pw")
    client.force_login(admin)
    cluster.wait_for_replay()
    changelist = reverse("admin:licensing_customer_changelist")
    with cluster.replay_paused():
        customer = _customer("Only on the primary")
        with CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica:
            page = client.get(changelist)
            assert page.status_code == 200
            assert customer.name not in page.content.decode()
            assert len(on_replica) > 0
            read_so_far = len(on_replica)
            assert client.get(reverse("admin:console_dashboard")).status_code == 200
            assert len(on_replica) > read_so_far
            read_so_far = len(on_replica)
            change = client.get(reverse("admin:licensing_customer_change", args=[customer.pk]))
            assert change.status_code == 200
            assert len(on_replica) == read_so_far
        posted = client.post(changelist, {"action": "delete_selected", "_selected_action": []})
        assert posted.cookies[STICKY_COOKIE]["max-age"] > 0
        assert customer.name in client.get(changelist).content.decode()


def test_a_replica_that_is_down_falls_back_to_the_primary_with_one_warning(cluster, caplog, settings):
    """With the standby stopped, scopes read the primary and the log says so once (no password in it), even
    when every scope tries the replica again."""
    settings.HONUA_REPLICA_RETRY_SECONDS = 0  # each scope retries: only the warning's own rate limit holds it to one
    customer = _customer("Read while the standby is down")
    cluster.stop_standby()
    try:
        with caplog.at_level(logging.WARNING, logger="honua.replica"):
            for _ in range(3):
                with replica_reads():
                    assert read_alias() == "default"
                    assert customer.name in dict(console_selectors.customers_for_filter()).values()
        warnings = [record.getMessage() for record in caplog.records if record.name == "honua.replica"]
        assert len(warnings) == 1
        assert "reading from the primary" in warnings[0]
        assert f"127.0.0.1:{cluster.standby_port}/honua" in warnings[0]
        assert REPLICA_PASSWORD not in caplog.text
    finally:
        cluster.start_standby()
    health.reset()
    cluster.wait_for_replay()
    with replica_reads():
        assert read_alias() == REPLICA_ALIAS
