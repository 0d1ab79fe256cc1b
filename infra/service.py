"""A part of the local cloud that starts and stops: `with Part(...) as part:` does both.

Also what parts of the same kind share: the two local HTTP servers (the API gateway and the
chaos proxy) serving from a thread and writing replies, and the looping threads of the
event-source poller and the scheduler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class Service:
    """Subclasses define start() (returning self) and stop(); stop() runs even on error."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServedInThread(Service):
    """An HTTP server (`self._server`) served from a daemon thread: the local gateway and
    the chaos proxy. stop() shuts it down, waits for the thread, and closes the socket."""

    _server: ThreadingHTTPServer
    _thread: threading.Thread | None = None
    thread_name = "server"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
            name=self.thread_name, daemon=True,
        )  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()


class WorkerThreads:
    """Daemon threads that each run a loop until `stopping` is set: the event-source
    poller's and the scheduler's. stop() asks them all, then waits for them together."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, loops: Iterable[tuple[str, Callable[[], None]]]) -> None:
        """Start one thread per (name, loop)."""
        self.stopping.clear()
        self._threads = [
            threading.Thread(target=loop, name=name, daemon=True) for name, loop in loops
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float) -> None:
        """Set `stopping`; waits up to `timeout` in all for the loops to end."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []


class KeepAliveHandler(BaseHTTPRequestHandler):
    """Request handling both local servers share: HTTP/1.1 keep-alive (so every reply must
    carry its length: write_reply), and TCP_NODELAY, because headers and body go out in two
    writes and, with Nagle on, the body waited for the client's delayed ACK of the headers
    (~40 ms a request on a kept-alive connection)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True


def write_reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    send_body: bool = True,
) -> None:
    """Status, headers, then the body with its length: both servers keep connections alive
    (HTTP/1.1), which only works when every reply says where it ends. `send_body=False`
    answers a HEAD request: the length of the body it would have had, and no body."""
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    if send_body:
        handler.wfile.write(body)
