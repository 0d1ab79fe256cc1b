"""The relay that lets Lambda containers reach the loopback-only emulator (infra/tcp_relay.py).

Real sockets: a real HTTP server on 127.0.0.1 behind a relay on another loopback port.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.emulator import free_port
from infra.tcp_relay import TcpRelay
from tests.integration.http import call


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_requests_pass_through_both_ways(upstream: int) -> None:
    with TcpRelay("127.0.0.1", 0, "127.0.0.1", upstream) as relay:
        body = {"data": "x" * 200_000}  # more than one chunk each way
        for _ in range(3):
            reply = call("POST", f"http://127.0.0.1:{relay.listen_port}/", body)
            assert reply.status == 200 and reply.json() == body


def test_it_listens_only_where_asked_and_stops(upstream: int) -> None:
    relay = TcpRelay("127.0.0.1", free_port(), "127.0.0.1", upstream).start()
    port = relay.listen_port
    relay.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_target_that_does_not_answer_closes_the_client() -> None:
    with (
        TcpRelay("127.0.0.1", 0, "127.0.0.1", free_port()) as relay,
        socket.create_connection(("127.0.0.1", relay.listen_port), timeout=5) as client,
    ):
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            answer = client.recv(100)
        except ConnectionResetError:
            answer = b""  # closed with our request unread
        assert answer == b""  # closed, no answer invented
