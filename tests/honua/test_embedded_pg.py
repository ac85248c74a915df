"""The embedded PostgreSQL: started once, reused, safe to start from several processes at once."""

import shutil
import subprocess
import sys
import uuid

import psycopg
import pytest

from honua import embedded_pg
from tests.conftest import PROJECT_ROOT, run_manage

pytestmark = pytest.mark.slow


def _start_in_subprocess(data_dir):
    code = (
        "import sys; from pathlib import Path; from honua import embedded_pg;"
        "s = embedded_pg.ensure_running(Path(sys.argv[1]), 'honua'); print(s.pid)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )


@pytest.fixture
def scratch():
    """A scratch folder for a throwaway server, outside pytest's tmp_path: pytest resets that tree to mode 0700
    when a session starts, which would lock the server's unprivileged user out of its own data."""
    folder = PROJECT_ROOT / ".honua" / f"test-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    yield folder
    embedded_pg.stop(folder / "pgdata")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def data_dir(scratch):
    return scratch / "pgdata"


def test_two_processes_starting_at_once_share_one_server(data_dir):
    """Two processes starting a fresh server at the same time both get the same running server."""
    processes = [_start_in_subprocess(data_dir) for _ in range(2)]
    pids = {process.communicate(timeout=120)[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    state = embedded_pg.status(data_dir)
    assert state.running
    assert pids == {str(state.pid)}
    assert state.version == "18"


def test_server_is_reused_and_keeps_its_data_after_a_restart(data_dir):
    """Starting twice reuses the server; after a stop, the next start finds the data it had."""
    first = embedded_pg.ensure_running(data_dir, "honua")
    assert embedded_pg.ensure_running(data_dir, "honua").pid == first.pid
    with psycopg.connect(first.dsn + " dbname=honua", autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
    assert embedded_pg.stop(data_dir) is True
    assert embedded_pg.status(data_dir).running is False
    assert embedded_pg.stop(data_dir) is False
    second = embedded_pg.ensure_running(data_dir, "honua")
    assert second.pid != first.pid
    with psycopg.connect(second.dsn + " dbname=honua") as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_a_server_whose_socket_file_vanished_is_restarted(data_dir):
    """If the running server's socket file is deleted, the next start restarts it so clients can connect again."""
    first = embedded_pg.ensure_running(data_dir, "honua")
    first.socket_path.unlink()
    second = embedded_pg.ensure_running(data_dir, "honua")
    assert second.pid != first.pid
    with psycopg.connect(second.dsn + " dbname=honua") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_server_listens_on_no_tcp_port(data_dir):
    """The embedded server accepts only local socket connections."""
    state = embedded_pg.ensure_running(data_dir)
    with psycopg.connect(state.dsn + " dbname=postgres") as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)


def test_dbserver_command_shows_starts_and_stops(scratch):
    """`manage.py dbserver` reports, starts and stops the embedded server of HONUA_PGDATA."""
    env = {"HONUA_PGDATA": str(scratch / "pgdata"), "DJANGO_SETTINGS_MODULE": "honua.settings.development"}
    assert "not initialised yet" in run_manage("dbserver", "status", env=env).stdout
    assert "running" in run_manage("dbserver", "start", env=env).stdout
    assert "running: PostgreSQL 18" in run_manage("dbserver", "status", env=env).stdout
    assert "stopped" in run_manage("dbserver", "stop", env=env).stdout
    assert "stopped: PostgreSQL 18" in run_manage("dbserver", "status", env=env).stdout


def test_dbserver_with_database_url_starts_nothing():
    """With DATABASE_URL set, `dbserver` says so and refuses to start an embedded server."""
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/honua"}
    assert "external PostgreSQL" in run_manage("dbserver", "status", env=env).stdout
    result = run_manage("dbserver", "start", env=env)
    assert result.returncode != 0
    assert "DATABASE_URL is set" in result.stderr


def test_migrate_just_works_on_a_fresh_data_folder(scratch):
    """With no DATABASE_URL, `migrate` starts a fresh embedded server and migrates it."""
    env = {"HONUA_PGDATA": str(scratch / "pgdata"), "DJANGO_SETTINGS_MODULE": "honua.settings.development"}
    result = run_manage("migrate", "--no-input", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    state = embedded_pg.status(scratch / "pgdata")
    with psycopg.connect(state.dsn + " dbname=honua") as conn:
        assert conn.execute("SELECT count(*) > 0 FROM schema_migrations").fetchone() == (True,)
