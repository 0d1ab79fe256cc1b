"""A part of the local cloud that starts and stops: `with Part(...) as part:` does both."""

from __future__ import annotations

import threading
import time
from http.server import ThreadingHTTPServer
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


def join_within(threads: list[threading.Thread], timeout: float) -> None:
    """Join every thread, all of them within one shared `timeout`."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
