"""A local API Gateway HTTP API: HTTP requests in, payload format 2.0 Lambda events out.

The event and the response mapping follow AWS's documented 2.0 format, so the API handler
(Mangum) sees locally what it sees behind API Gateway. So do the refusals made before any
function runs: every one is a JSON {"message": ...} as API Gateway's are, never http.server's
HTML error page; any method reaches an ANY route (the app, not the gateway, answers 405).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.sandbox import FunctionTimeout, Invocable, InvokeError
from infra.service import KeepAliveHandler, ServedInThread, write_reply
from infra.template import HttpRoute
from taskq.ratelimit import TokenBucket

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# HTTP API quota "total combined size of request line and header values": 10240 bytes (not
# adjustable). AWS does not document the status it answers over it; 414 and 431 are HTTP's.
MAX_HEADER_BYTES = 10240
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token
_INTERNAL_ERROR = (502, {"message": "Internal Server Error"})
_TIMEOUT = (504, {"message": "Service Unavailable"})
_NOT_FOUND = (404, {"message": "Not Found"})
_TOO_LARGE = (413, {"message": "Request Entity Too Large"})
_LENGTH_REQUIRED = (411, {"message": "Length Required"})
_BAD_REQUEST = (400, {"message": "Bad Request"})
_THROTTLED = (429, {"message": "Too Many Requests"})
_URI_TOO_LONG = (414, {"message": "Request-URI Too Long"})
_HEADERS_TOO_LARGE = (431, {"message": "Request Header Fields Too Large"})
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Route:
    """A route compiled to a regex; more specific routes sort first, as API Gateway picks."""

    def __init__(self, route: HttpRoute, function: Invocable) -> None:
        self.route = route
        self.function = function
        parts = []
        for segment in route.path.strip("/").split("/") if route.path != "/" else []:
            if m := re.fullmatch(r"\{(\w+)\+\}", segment):
                parts.append(f"(?P<{m.group(1)}>.+)")
            elif m := re.fullmatch(r"\{(\w+)\}", segment):
                parts.append(f"(?P<{m.group(1)}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        self.regex = re.compile("/" + "/".join(parts))
        self.rank = ("+}" in route.path, route.path.count("{"), route.method == "ANY")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.route.method not in ("ANY", method):
            return None
        m = self.regex.fullmatch(path)
        return {k: unquote(v) for k, v in m.groupdict().items()} if m else None


class LocalGateway(ServedInThread):
    """Serves the routes on 127.0.0.1 (port 0: any free port) and invokes their functions."""

    thread_name = "local-gateway"

    def __init__(
        self,
        routes: Sequence[tuple[HttpRoute, Invocable]],
        *,
        host: str = HOST,
        port: int = 0,
        account_id: str = "000000000000",
        api_id: str = "local",
        throttle: TokenBucket | None = None,
    ) -> None:
        self.throttle = throttle
        self._routes = sorted((_Route(r, f) for r, f in routes), key=lambda r: r.rank)
        self.account_id = account_id
        self.api_id = api_id
        self._server = _Server((host, port), _Handler)
        self._server.gateway = self
        self.host = host

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def handle(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> Reply:
        """One request: route it, build the 2.0 event, invoke, map the result to HTTP."""
        raw_path, _, raw_query = target.partition("?")
        if not raw_path.startswith("/"):  # absolute-form target: http://host/path
            raw_path = urlsplit(raw_path).path or "/"
        request_id = base64.b64encode(os.urandom(11)).decode()
        wait = self.throttle.take() if self.throttle else 0.0
        if wait:
            reply = _json_reply(*_THROTTLED, request_id)
            reply.headers.append(("retry-after", str(max(1, math.ceil(wait)))))
            return reply
        for route in self._routes:
            params = route.match(method, raw_path)
            if params is not None:
                break
        else:
            return _json_reply(*_NOT_FOUND, request_id)
        event = self._event(route.route, method, raw_path, raw_query, headers, body, source_ip)
        event["requestContext"]["requestId"] = request_id
        if params:
            event["pathParameters"] = params
        try:
            result = route.function.invoke(event)
        except FunctionTimeout:
            return _json_reply(*_TIMEOUT, request_id)
        except InvokeError as exc:
            log.warning("%s %s -> %s", method, raw_path, exc)
            return _json_reply(*_INTERNAL_ERROR, request_id)
        try:
            return _response(result, request_id)
        except (TypeError, ValueError) as exc:
            log.warning("%s %s -> malformed Lambda response: %s", method, raw_path, exc)
            return _json_reply(*_INTERNAL_ERROR, request_id)

    def _event(
        self,
        route: HttpRoute,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> dict[str, Any]:
        joined: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in headers:
            name = name.lower()
            if name == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
            else:
                joined[name] = f"{joined[name]},{value}" if name in joined else value
        joined["x-forwarded-for"] = (
            f"{joined['x-forwarded-for']}, {source_ip}"
            if "x-forwarded-for" in joined
            else source_ip
        )
        joined.setdefault("x-forwarded-proto", "http")
        joined.setdefault("x-forwarded-port", str(self.port))
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = time.time()
        domain = joined.get("host", f"{self.host}:{self.port}")
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": joined,
            "requestContext": {
                "accountId": self.account_id,
                "apiId": self.api_id,
                "domainName": domain,
                "domainPrefix": domain.split(".")[0],
                "http": {
                    "method": method,
                    "path": raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": source_ip,
                    "userAgent": joined.get("user-agent", ""),
                },
                "requestId": "",
                "routeKey": route.key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if body:
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        return event


def _response(result: Any, request_id: str) -> Reply:
    """Map a 2.0 Lambda result to HTTP; without a statusCode it is a 200 JSON body (AWS's rule)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        text = result if isinstance(result, str) else json.dumps(result)
        headers = [("content-type", "application/json"), ("apigw-requestid", request_id)]
        return Reply(200, headers, text.encode())
    status = result["statusCode"]
    if (
        isinstance(status, bool)
        or not isinstance(status, int | str)
        or not 100 <= int(status) <= 599
    ):
        raise ValueError(f"statusCode {status!r}")
    raw_body = result.get("body")
    if raw_body is not None and not isinstance(raw_body, str):
        raise TypeError("body is not a string")
    body = (raw_body or "").encode()
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body, validate=True)
    headers = [
        (str(k), str(v))
        for k, v in (result.get("headers") or {}).items()
        if str(k).lower() not in _HOP_BY_HOP
    ]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    headers.append(("apigw-requestid", request_id))
    return Reply(int(status), headers, body)


def _json_reply(status: int, payload: dict[str, str], request_id: str) -> Reply:
    headers = [("content-type", "application/json"), ("apigw-requestid", request_id)]
    return Reply(status, headers, json.dumps(payload).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    gateway: LocalGateway


class _Handler(KeepAliveHandler):
    timeout = 10  # idle keep-alive connections are closed after this

    def __getattr__(self, name: str) -> Callable[[], None]:
        """Every method is served, as API Gateway passes any method to an ANY route:
        http.server looks up do_<METHOD> and, without one, answers 501 (an HTML page)."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        gateway = cast(_Server, self.server).gateway
        refusal = self._refusal()
        if refusal is not None:
            reply = _json_reply(*refusal, "")
            self.close_connection = True  # an unread body must not be parsed as a request
        else:
            length = self.headers.get("content-length")
            body = self.rfile.read(int(length)) if length else b""
            reply = gateway.handle(
                self.command, self.path, list(self.headers.items()), body, self.client_address[0]
            )
        write_reply(self, reply.status, reply.headers, reply.body, send_body=self.command != "HEAD")

    def _refusal(self) -> tuple[int, dict[str, str]] | None:
        """What API Gateway refuses before routing: a malformed method, a request line and
        headers over its quota, a body it cannot or will not take."""
        length = self.headers.get("content-length")
        head = len(self.requestline) + sum(len(value) for value in self.headers.values())
        if not _METHOD.fullmatch(self.command):
            return _BAD_REQUEST
        if len(self.requestline) > MAX_HEADER_BYTES:
            return _URI_TOO_LONG
        if head > MAX_HEADER_BYTES:
            return _HEADERS_TOO_LARGE
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return _LENGTH_REQUIRED
        if length is not None and not length.isdigit():
            return _BAD_REQUEST
        if length is not None and int(length) > MAX_BODY_BYTES:
            return _TOO_LARGE
        return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, a header line over 64 KiB,
        over 100 headers) as API Gateway-style JSON, not an HTML page. Only the status's
        phrase is sent: `message` may quote the client's bytes."""
        self.log_error("code %d, message %s", code, message)
        phrase = self.responses.get(code, ("Error", ""))[0]
        self.close_connection = True
        headers = [("content-type", "application/json"), ("connection", "close")]
        body = json.dumps({"message": phrase}).encode()
        write_reply(self, code, headers, body, send_body=self.command != "HEAD")

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)
