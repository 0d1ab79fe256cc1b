"""A fault-injecting HTTP proxy between AWS clients and the emulator (tests only).

Point AWS_ENDPOINT_URL at it: each call is forwarded to the emulator, except a seeded fraction
that gets what AWS sometimes answers instead: throttling, a 500 or a 503 (in the error shape of
the call's protocol, so botocore parses and retries them as it would AWS's), or a connection
closed before the call reached the service or after the service applied it (the response is
lost, the caller cannot know it worked). A fraction of logical calls fail on every retry, so the
caller's own error path runs too. Hooks can take a call over (answer it, drop it, rewrite it).

Calls are recognised by the JSON protocol's X-Amz-Target header (DynamoDB, SQS) or the query
protocol's Action parameter; job ids found in a call are recorded with the faults it got, so a
test can tell which jobs a fault touched.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import random
import re
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from infra.service import KeepAliveHandler, ServedInThread, write_reply

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
UPSTREAM_TIMEOUT_S = 40.0  # above the longest long poll a client may ask for (20 s)
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade",
     "content-length", "trailer"}
)  # fmt: skip
_ATTEMPT = re.compile(r"attempt=(\d+)")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")

# Fault kinds, as counted and recorded.
THROTTLE = "throttle"
ERROR_500 = "500"
ERROR_503 = "503"
DROP_BEFORE = "drop-before"  # closed before forwarding: the call never happened
DROP_AFTER = "drop-after"  # forwarded, then closed: the call happened, its response is lost
PERSISTENT = "persistent"  # every attempt of one logical call answered 503
KINDS = (THROTTLE, ERROR_500, ERROR_503, DROP_BEFORE, DROP_AFTER, PERSISTENT)


@dataclass(frozen=True)
class FaultRates:
    """Probability of each fault per call (per logical call for `persistent`)."""

    throttle: float = 0.0
    error_500: float = 0.0
    error_503: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    persistent: float = 0.0

    def pick(self, roll: float) -> str | None:
        """The fault for a uniform roll in [0, 1), or None (per-call kinds only)."""
        edge = 0.0
        for kind, rate in (
            (THROTTLE, self.throttle), (ERROR_500, self.error_500), (ERROR_503, self.error_503),
            (DROP_BEFORE, self.drop_before), (DROP_AFTER, self.drop_after),
        ):  # fmt: skip
            edge += rate
            if roll < edge:
                return kind
        return None


@dataclass
class Call:
    """One HTTP request from an AWS client, as the proxy sees it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    service: str  # "dynamodb", "sqs" or "" (unknown)
    operation: str
    invocation_id: str  # botocore's amz-sdk-invocation-id: one logical call, all its retries
    attempt: int

    @property
    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def job_ids(self) -> list[str]:
        """Job ids this call is about: a DynamoDB key/item id, or SQS message bodies' job_id."""
        data = self.json
        found: list[str] = []
        if self.service == "dynamodb":
            for holder in (data.get("Key"), data.get("Item")):
                if isinstance(holder, dict):
                    found.append(str(holder.get("id", {}).get("S", "")))
            for requests in (data.get("RequestItems") or {}).values():
                for request in requests if isinstance(requests, list) else []:
                    item = request.get("PutRequest", {}).get("Item", {})
                    found.append(str(item.get("id", {}).get("S", "")))
        elif self.service == "sqs":
            bodies: list[Any] = [data.get("MessageBody")]
            bodies += [
                e.get("MessageBody") for e in data.get("Entries") or [] if isinstance(e, dict)
            ]
            for body in bodies:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    found.append(str(json.loads(str(body)).get("job_id", "")))
        return [job_id for job_id in found if _JOB_ID.match(job_id)]


@dataclass(frozen=True)
class Respond:
    """A hook's answer in place of the service's."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/x-amz-json-1.0"),)


@dataclass(frozen=True)
class Drop:
    """Close the connection without an answer; `after`: forward the call first."""

    after: bool = False


@dataclass(frozen=True)
class Forward:
    """Forward `body` instead of the call's own, then let `rewrite` change the answer."""

    body: bytes
    rewrite: Callable[[int, bytes], bytes] | None = None


Action = Respond | Drop | Forward
Hook = Callable[[Call], Action | None]


@dataclass
class ProxyStats:
    calls: Counter[str] = field(default_factory=Counter)  # by "service operation"
    faults: Counter[str] = field(default_factory=Counter)  # by kind
    faults_by_call: Counter[str] = field(default_factory=Counter)  # by "service operation kind"
    hooked: Counter[str] = field(default_factory=Counter)  # by hook action
    gave_up: int = 0  # logical calls whose last attempt got a fault (botocore gave up)

    def copy(self) -> ProxyStats:
        return ProxyStats(
            Counter(self.calls), Counter(self.faults), Counter(self.faults_by_call),
            Counter(self.hooked), self.gave_up,
        )  # fmt: skip


class ChaosProxy(ServedInThread):
    """Serves on 127.0.0.1 (port 0: any free port) and forwards to `upstream` (the emulator)."""

    thread_name = "chaos-proxy"

    def __init__(
        self,
        upstream: str,
        *,
        rates: FaultRates | None = None,
        seed: int = 0,
        services: frozenset[str] = frozenset({"dynamodb", "sqs"}),
        port: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.rates = rates or FaultRates()
        self.services = services
        self.enabled = False  # off until the test has provisioned what it needs
        self.hooks: list[Hook] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stats = ProxyStats()
        self._persistent: set[str] = set()
        # Per logical call (botocore's invocation id): did its latest attempt get a fault?
        # Counted at the end rather than from `attempt >= max`: botocore only sometimes
        # sends the max in amz-sdk-request (1.40 sends "attempt=N" alone).
        self._last_faulted: dict[str, bool] = {}
        self._by_job: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
        self._server = _Server((HOST, port), _Handler)
        self._server.proxy = self

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    @property
    def stats(self) -> ProxyStats:
        with self._lock:
            stats = self._stats.copy()
            stats.gave_up = sum(self._last_faulted.values())
            return stats

    def faults_by_job(self) -> dict[str, list[tuple[float, str, str]]]:
        """Per job id: (time, "service operation", fault kind) of every fault its calls got."""
        with self._lock:
            return {job_id: list(faults) for job_id, faults in self._by_job.items()}

    # --- deciding ------------------------------------------------------------------

    def decide(self, call: Call) -> tuple[str | None, Action | None]:
        """The fault kind (for the books) and what to do instead of a plain forward."""
        with self._lock:
            self._stats.calls[f"{call.service} {call.operation}"] += 1
        if not self.enabled:
            return None, None
        for hook in list(self.hooks):
            action = hook(call)
            if action is not None:
                with self._lock:
                    self._stats.hooked[type(action).__name__] += 1
                return None, action
        if call.service not in self.services:
            return None, None
        with self._lock:
            if call.invocation_id in self._persistent:
                kind: str | None = PERSISTENT
            elif call.attempt <= 1 and self._random.random() < self.rates.persistent:
                self._persistent.add(call.invocation_id)
                kind = PERSISTENT
            else:
                kind = self.rates.pick(self._random.random())
            self._last_faulted[call.invocation_id] = kind is not None
            if kind is None:
                return None, None
            self._stats.faults[kind] += 1
            self._stats.faults_by_call[f"{call.service} {call.operation} {kind}"] += 1
        now = time.time()
        for job_id in call.job_ids():
            with self._lock:
                self._by_job[job_id].append((now, f"{call.service} {call.operation}", kind))
        return kind, _action_for(kind, call)

    # --- forwarding ------------------------------------------------------------------

    def forward(self, call: Call, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=UPSTREAM_TIMEOUT_S)
        try:
            headers = {k: v for k, v in call.headers.items() if k not in _HOP_BY_HOP}
            headers["content-length"] = str(len(body))
            connection.request(call.method, call.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, data
        finally:
            connection.close()


def _action_for(kind: str, call: Call) -> Action:
    if kind == DROP_BEFORE:
        return Drop(after=False)
    if kind == DROP_AFTER:
        return Drop(after=True)
    status, code = {
        THROTTLE: (400, "throttle"), ERROR_500: (500, "internal"),
        ERROR_503: (503, "unavailable"), PERSISTENT: (503, "unavailable"),
    }[kind]  # fmt: skip
    return error_response(call, status, code)


# Error codes by service in their own vocabulary; botocore retries these (throttling codes by
# name, 500 and 503 by status).
_CODES = {
    "dynamodb": {
        "throttle": "ThrottlingException",
        "internal": "InternalServerError",
        "unavailable": "ServiceUnavailable",
    },
    "sqs": {"throttle": "RequestThrottled", "internal": "InternalError",
            "unavailable": "ServiceUnavailable"},
}  # fmt: skip
_NAMESPACE = {"dynamodb": "com.amazonaws.dynamodb.v20120810", "sqs": "com.amazonaws.sqs"}


def error_response(call: Call, status: int, code: str) -> Respond:
    """An AWS error in the shape of the call's protocol (JSON 1.0, or query's XML)."""
    name = _CODES.get(call.service, _CODES["sqs"]).get(code, code)
    message = f"injected by the chaos proxy ({name})"
    request_id = str(uuid.uuid4())
    if call.headers.get("x-amz-target"):
        namespace = _NAMESPACE.get(call.service, "com.amazonaws")
        body = json.dumps({"__type": f"{namespace}#{name}", "message": message}).encode()
        fault = "Sender" if status < 500 else "Receiver"
        return Respond(status, body, (
            ("content-type", "application/x-amz-json-1.0"), ("x-amzn-requestid", request_id),
            ("x-amzn-errortype", name), ("x-amzn-query-error", f"{name};{fault}"),
        ))  # fmt: skip
    xml = (
        '<?xml version="1.0"?><ErrorResponse><Error><Type>'
        f"{'Sender' if status < 500 else 'Receiver'}</Type><Code>{name}</Code>"
        f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Respond(status, xml.encode(), (("content-type", "text/xml"),))


def describe(method: str, path: str, headers: dict[str, str], body: bytes) -> Call:
    """Which service and operation a request is (JSON protocol target, or query Action)."""
    target = headers.get("x-amz-target", "")
    service, operation = "", ""
    if target:
        prefix, _, operation = target.partition(".")
        service = (
            "dynamodb" if prefix.startswith("DynamoDB") else "sqs" if prefix == "AmazonSQS" else ""
        )
    elif "x-www-form-urlencoded" in headers.get("content-type", ""):
        form = parse_qs(body.decode(errors="replace"))
        operation = (form.get("Action") or [""])[0]
        service = "sqs" if "QueueUrl" in form or "QueueName" in form else ""
    sdk = headers.get("amz-sdk-request", "")
    attempt = _ATTEMPT.search(sdk)
    return Call(
        method=method, path=path, headers=headers, body=body, service=service,
        operation=operation, invocation_id=headers.get("amz-sdk-invocation-id", str(uuid.uuid4())),
        attempt=int(attempt.group(1)) if attempt else 1,
    )  # fmt: skip


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: ChaosProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a killed sandbox resets its connections) is a debug line,
        not socketserver's traceback on stderr; anything else still gets the traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.debug("chaos proxy: client %s went away: %s", client_address, error)
            return
        super().handle_error(request, client_address)


class _Handler(KeepAliveHandler):
    timeout = 30

    def _serve(self) -> None:
        proxy = cast(_Server, self.server).proxy
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        call = describe(self.command, self.path, headers, body)
        _, action = proxy.decide(call)
        try:
            if isinstance(action, Drop):
                if action.after:
                    proxy.forward(call, body)
                self._drop()
                return
            if isinstance(action, Respond):
                write_reply(self, action.status, action.headers, action.body)
                return
            sent = action.body if isinstance(action, Forward) else body
            status, reply_headers, data = proxy.forward(call, sent)
            if isinstance(action, Forward) and action.rewrite is not None:
                data = action.rewrite(status, data)
            write_reply(self, status, reply_headers, data)
        except OSError as exc:  # the upstream is gone, or the client went away
            log.warning("chaos proxy: %s %s failed: %s", call.service, call.operation, exc)
            self._drop()

    def _drop(self) -> None:
        """Reset the connection: the client sees it closed with no answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
