"""A TCP relay from one local address to a service on loopback (the `sam local` paths).

The embedded emulator listens on 127.0.0.1 only. Lambda containers cannot reach the host's
loopback: they reach this machine through their Docker network's gateway address. The relay
listens on exactly that address and forwards each connection to the emulator, so the
emulator is reachable from loopback and that bridge, and from nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

from infra.service import Service

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
_CHUNK = 65536


class TcpRelay(Service):
    """Accepts on listen_host:listen_port and pipes each connection to target_host:target_port."""

    def __init__(
        self, listen_host: str, listen_port: int, target_host: str, target_port: int
    ) -> None:
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> TcpRelay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.listen_host, self.listen_port))
        self.listen_port = int(listener.getsockname()[1])
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="tcp-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every relayed connection, then wait for the acceptor."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            log.warning("relay: %s:%s does not answer: %s", *self.target, exc)
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        with self._lock:
            self._open.difference_update((client, upstream))
        client.close()
        upstream.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until source ends, then pass the end on (half-close), so replies still flow."""
    try:
        while chunk := source.recv(_CHUNK):
            sink.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
