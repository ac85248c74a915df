"""`make demo` stops at once, saying why, when its port is taken (scripts/check-port), before it changes anything."""

import socket
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "check-port"


def _run(port: int) -> subprocess.CompletedProcess:
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(SCRIPT), "127.0.0.1", str(port)], capture_output=True, text=True, env=env, check=False)


def test_busy_port_is_reported_clearly_and_fails():
    """A listening socket on the port: exit status 1 and a message naming the port and what to do."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = _run(port)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr and "DEMO_PORT" in result.stderr


def test_free_port_passes_quietly():
    """A free port: exit status 0, nothing printed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _run(port)
    assert result.returncode == 0 and result.stderr == ""
