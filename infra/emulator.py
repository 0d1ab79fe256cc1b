"""The embedded AWS emulator: moto's server as a child process on loopback.

The child watches its parent and exits when the parent is gone, so a crashed test run or a
killed `make dev` never leaves a server holding the port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from infra.service import Service

HOST = "127.0.0.1"
_ROOT = Path(__file__).resolve().parent.parent  # for the child's `import infra`
START_TIMEOUT_S = 15.0

# Runs in the child: a watchdog thread ends the server once its parent has died (the child
# is then re-parented), then moto's own entry point takes over.
#
# moto's server is threaded but its DynamoDB backend takes no lock, so two concurrent
# conditional writes to one item can both succeed (seen: 1 in 200 racing claims). DynamoDB
# itself applies each write to an item atomically, and taskq's guarantees rest on that, so
# DynamoDB requests are serialised here; SQS (long polls) stays concurrent. Its Query is
# made to skip a whole-table sort (`infra.moto_query`: same answers, 6x faster at 10,000 items).
_BOOT = """
import os, sys, threading, time
parent = int(sys.argv[1])
sys.path.append(sys.argv[2])  # after site-packages: it shadows nothing
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
import moto.server as server
from infra.moto_query import install
if not install():
    print("taskq: moto's Query left as it is (internals not as expected)", file=sys.stderr)
_dynamodb = threading.Lock()
class Serialised(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with _dynamodb:
                return list(super().__call__(environ, start_response))
        return super().__call__(environ, start_response)
server.DomainDispatcherApplication = Serialised
server.main(sys.argv[3:])
"""


class EmulatorError(Exception):
    """The emulator could not be started or did not answer."""


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when a server could not bind host:port (checked the way the servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def endpoint_reachable(url: str, timeout: float = 2.0) -> bool:
    """True when something answers HTTP at url (any status counts: it is alive)."""
    try:
        # The caller's own endpoint (loopback or AWS_ENDPOINT_URL), never user input.
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310  # nosec B310
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


class MotoServer(Service):
    """moto's server on 127.0.0.1:port in a child process; a context manager."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise EmulatorError("moto server is not running")
        return self._proc.pid

    def start(self) -> MotoServer:
        if port_in_use(HOST, self.port):
            raise EmulatorError(f"port {self.port} on {HOST} is already in use")
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self._log_path, "w+b")  # noqa: SIM115 - closed in stop()
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        argv = [sys.executable, "-c", _BOOT, str(os.getpid()), str(_ROOT)]
        argv += ["-H", HOST, "-p", str(self.port)]
        # Own session: Ctrl-C in a terminal reaches the parent, which then stops the server.
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise EmulatorError(f"moto server exited at start-up: {tail}")
            if endpoint_reachable(f"{self.url}/moto-api/", timeout=1.0):
                return self
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"moto server did not answer on {self.url} within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        """Terminate, then kill, the server by its own pid."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"
