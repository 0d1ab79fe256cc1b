"""infra.gateway over real HTTP: 2.0 events in, 2.0 responses out, API Gateway's error codes."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from infra.gateway import MAX_BODY_BYTES, LocalGateway
from infra.sandbox import LocalFunction
from infra.template import FunctionSpec, HttpRoute
from taskq.ratelimit import TokenBucket

pytestmark = pytest.mark.integration

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "functions" / "toy"
Response = tuple[int, list[tuple[str, str]], bytes]


def toy(handler: str, timeout: int = 5) -> LocalFunction:
    return LocalFunction(FunctionSpec(handler, TOY, f"app.{handler}", timeout=timeout))


@pytest.fixture(scope="module")
def gateway() -> Iterator[LocalGateway]:
    functions = {name: toy(name) for name in ("echo", "respond", "boom")}
    functions["sleep"] = toy("sleep", timeout=1)
    routes = [
        (HttpRoute("ANY", "/{proxy+}"), functions["echo"]),
        (HttpRoute("ANY", "/"), functions["echo"]),
        (HttpRoute("POST", "/respond"), functions["respond"]),
        (HttpRoute("ANY", "/boom"), functions["boom"]),
        (HttpRoute("ANY", "/sleep"), functions["sleep"]),
    ]
    gw = LocalGateway(routes).start()
    yield gw
    gw.stop()
    for function in functions.values():
        function.close()


def call(
    gw: LocalGateway,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> Response:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def event_of(response: Response) -> dict[str, Any]:
    status, headers, body = response
    assert status == 200
    assert ("content-type", "application/json") in headers  # no statusCode: 200 JSON
    event: dict[str, Any] = json.loads(body)
    return event


def test_event_for_get(gateway: LocalGateway) -> None:
    before = time.time() * 1000
    headers = [
        ("X-Multi", "1"),
        ("X-Multi", "2"),
        ("Cookie", "a=1; b=2"),
        ("User-Agent", "tester/1"),
    ]
    event = event_of(call(gateway, "GET", "/a/b%20c?x=1&x=2&y=&z=%2F", headers))
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /{proxy+}"
    assert event["rawPath"] == "/a/b%20c"
    assert event["rawQueryString"] == "x=1&x=2&y=&z=%2F"
    assert event["queryStringParameters"] == {"x": "1,2", "y": "", "z": "/"}
    assert event["pathParameters"] == {"proxy": "a/b c"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["headers"]["x-multi"] == "1,2"
    assert event["headers"]["user-agent"] == "tester/1"
    assert "cookie" not in event["headers"]
    assert "body" not in event
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "GET",
        "path": "/a/b%20c",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tester/1",
    }
    assert ctx["routeKey"] == "ANY /{proxy+}"
    assert ctx["stage"] == "$default"
    assert ctx["domainName"] == f"{gateway.host}:{gateway.port}"
    assert ctx["accountId"] and ctx["apiId"] and ctx["requestId"] and ctx["time"]
    assert int(before) <= ctx["timeEpoch"] <= time.time() * 1000  # whole ms, truncated


def test_root_route(gateway: LocalGateway) -> None:
    event = event_of(call(gateway, "GET", "/"))
    assert event["routeKey"] == "ANY /"
    assert event["rawQueryString"] == ""
    assert "pathParameters" not in event
    assert "queryStringParameters" not in event


def test_text_and_binary_bodies(gateway: LocalGateway) -> None:
    text = event_of(
        call(gateway, "POST", "/jobs", [("Content-Type", "application/json")], b'{"a":"\xc3\xa9"}')
    )
    assert text["body"] == '{"a":"é"}'
    assert text["isBase64Encoded"] is False
    assert text["headers"]["content-type"] == "application/json"
    assert text["requestContext"]["http"]["method"] == "POST"
    raw = b"\xff\x00\xfe binary"
    binary = event_of(call(gateway, "PUT", "/blob", body=raw))
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == raw


def test_response_mapping(gateway: LocalGateway) -> None:
    wanted = {
        "statusCode": 201,
        "headers": {"x-a": "b", "content-type": "text/plain"},
        "cookies": ["s=1; Path=/", "t=2"],
        "body": "hello",
    }
    status, headers, body = call(gateway, "POST", "/respond", body=json.dumps(wanted).encode())
    assert (status, body) == (201, b"hello")
    assert ("x-a", "b") in headers
    assert ("content-type", "text/plain") in headers
    assert [v for k, v in headers if k.lower() == "set-cookie"] == ["s=1; Path=/", "t=2"]
    encoded = {
        "statusCode": 200,
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
    }
    assert call(gateway, "POST", "/respond", body=json.dumps(encoded).encode())[2] == b"\x00\x01"
    status, _, body = call(gateway, "POST", "/respond", body=b'"plain"')
    assert (status, body) == (200, b"plain")  # a bare string is the body of a 200


def test_errors(gateway: LocalGateway) -> None:
    status, _, body = call(gateway, "GET", "/boom")
    assert (status, json.loads(body)) == (502, {"message": "Internal Server Error"})
    status, _, body = call(gateway, "POST", "/respond", body=b'{"statusCode": "nope"}')
    assert (status, json.loads(body)) == (502, {"message": "Internal Server Error"})
    started = time.monotonic()
    status, _, body = call(gateway, "GET", "/sleep")
    assert (status, json.loads(body)) == (504, {"message": "Service Unavailable"})
    assert time.monotonic() - started < 4


def test_too_large_is_refused_without_invoking(gateway: LocalGateway) -> None:
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    try:
        conn.putrequest("POST", "/boom")
        conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        conn.endheaders()
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (
            413,
            {"message": "Request Entity Too Large"},
        )
    finally:
        conn.close()


def test_unknown_route() -> None:
    function = toy("echo")
    gw = LocalGateway([(HttpRoute("GET", "/only/{id}"), function)]).start()
    try:
        for method, path in (("GET", "/other"), ("POST", "/only/1"), ("GET", "/only/1/2")):
            status, _, body = call(gw, method, path)
            assert (status, json.loads(body)) == (404, {"message": "Not Found"}), (method, path)
        assert event_of(call(gw, "GET", "/only/7"))["pathParameters"] == {"id": "7"}
    finally:
        gw.stop()
        function.close()


def test_requests_over_the_throttle_get_429_before_the_function() -> None:
    function = toy("echo")
    gw = LocalGateway(
        [(HttpRoute("ANY", "/{proxy+}"), function)], throttle=TokenBucket(rate=0.5, burst=2)
    ).start()
    try:
        statuses = [call(gw, "GET", "/x") for _ in range(3)]
        assert [s[0] for s in statuses[:2]] == [200, 200]
        status, headers, body = statuses[2]
        assert status == 429
        assert json.loads(body) == {"message": "Too Many Requests"}
        assert int(dict(headers)["retry-after"]) >= 1
    finally:
        gw.stop()
        function.close()


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "FROBNICATE", "get"])
def test_any_method_reaches_an_any_route(gateway: LocalGateway, method: str) -> None:
    # API Gateway passes any method to an ANY route; the function (the app) decides: it
    # answers 405 itself (tests/integration/test_security.py), not a 501 HTML page here.
    event = event_of(call(gateway, method, "/jobs"))
    assert event["requestContext"]["http"]["method"] == method


def assert_refused(response: Response, status: int, message: str) -> None:
    got, headers, body = response
    assert (got, json.loads(body)) == (status, {"message": message})
    assert ("content-type", "application/json") in headers


def test_a_method_that_is_no_token_is_a_json_400(gateway: LocalGateway) -> None:
    assert_refused(call(gateway, "GE<T", "/jobs"), 400, "Bad Request")


def test_request_line_and_headers_over_api_gateways_quota(gateway: LocalGateway) -> None:
    # HTTP API quota: request line and header values take at most 10240 bytes together.
    assert event_of(call(gateway, "GET", "/x", [("X-Big", "a" * 9000)]))["headers"]["x-big"]
    too_large = "Request Header Fields Too Large"
    assert_refused(call(gateway, "GET", "/x", [("X-Big", "a" * 11_000)]), 431, too_large)
    split = [("X-A", "a" * 6000), ("X-B", "b" * 6000)]
    assert_refused(call(gateway, "GET", "/x", split), 431, too_large)
    # Over http.server's own limits (a 64 KiB header line, 100 headers): still JSON, at once.
    started = time.monotonic()
    assert_refused(call(gateway, "GET", "/x", [("X-Big", "a" * 100_000)]), 431, too_large)
    many = [(f"X-{n}", "1") for n in range(120)]
    assert_refused(call(gateway, "GET", "/x", many), 431, too_large)
    assert_refused(call(gateway, "GET", "/x?" + "q" * 20_000), 414, "Request-URI Too Long")
    assert_refused(call(gateway, "GET", "/x?" + "q" * 70_000), 414, "Request-URI Too Long")
    assert time.monotonic() - started < 5
    assert event_of(call(gateway, "GET", "/x"))["rawPath"] == "/x"  # and it still serves
