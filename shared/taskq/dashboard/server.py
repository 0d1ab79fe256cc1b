"""Serving the dashboard: uvicorn on a socket bound first, so a busy port fails with one
line before anything starts, and port 0 (tests) gets a free port whose URL is known.

`serve` runs in the foreground (`taskq dashboard`, until Ctrl-C); `DashboardThread`
runs it beside other work (`make dev`, the browser tests) and stops it on exit.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from taskq.errors import UsageError

START_TIMEOUT_S = 10.0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; a port in use or a bad host is a UsageError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _server(app: FastAPI) -> uvicorn.Server:
    # No log configuration of its own (the process's stays), no access log on stdout.
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve until Ctrl-C or SIGTERM (uvicorn handles both in the main thread)."""
    _server(app).run(sockets=[sock])


class DashboardThread:
    """The dashboard in a daemon thread, for as long as the `with` block lasts."""

    def __init__(self, app: FastAPI, sock: socket.socket) -> None:
        self.sock = sock
        self.server = _server(app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="dashboard", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def __enter__(self) -> DashboardThread:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=START_TIMEOUT_S)
        self.sock.close()
