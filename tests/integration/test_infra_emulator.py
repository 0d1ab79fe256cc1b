"""infra.emulator: the moto server process starts, refuses a busy port, and never outlives us."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.emulator import EmulatorError, MotoServer, endpoint_reachable, free_port, port_in_use

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Running and not a zombie (a dead child nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_busy_port_is_a_clear_error(moto_server: MotoServer) -> None:
    assert port_in_use("127.0.0.1", moto_server.port)
    assert endpoint_reachable(moto_server.url)
    with pytest.raises(EmulatorError, match="already in use"):
        MotoServer(moto_server.port).start()


def test_unreachable_endpoint() -> None:
    assert not endpoint_reachable(f"http://127.0.0.1:{free_port()}", timeout=1)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_stop_and_parent_death_end_the_server() -> None:
    with MotoServer() as server:
        pid = server.pid
    assert wait_dead(pid)

    code = (
        "import sys, time\n"
        "from infra.emulator import MotoServer\n"
        "server = MotoServer().start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env) as parent:
        try:
            assert parent.stdout is not None
            server_pid = int(parent.stdout.readline())
            assert alive(server_pid)
        finally:
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(5)
    assert wait_dead(server_pid), "moto server outlived its parent"
