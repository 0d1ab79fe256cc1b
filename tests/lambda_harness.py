"""Calling the real Lambda handlers in this process, with events made by `sam local generate-event`.

The handlers are the files Lambda runs (functions/*/app.py), loaded under distinct module
names (each is `app`). Their environment comes from template.yaml through infra.template,
as in the local sandboxes, so a variable added to the template reaches these tests too.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from infra.sandbox import LambdaContext
from infra.template import Stack

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "events"
TEMPLATE = ROOT / "template.yaml"

Handler = Callable[[dict[str, Any], Any], Any]


def event(name: str) -> dict[str, Any]:
    """A checked-in generated event (tests/events/NAME.json), as a fresh copy."""
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


def load_handler(logical_id: str, stack: Stack) -> Handler:
    """Import the function's handler module from its CodeUri under a name of its own."""
    spec = stack.function(logical_id)
    module_name, _, attr = spec.handler.rpartition(".")
    path = spec.code_uri / f"{module_name.replace('.', '/')}.py"
    unique = f"_lambda_{logical_id}_{uuid.uuid4().hex[:8]}"
    module_spec = importlib.util.spec_from_file_location(unique, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    handler: Handler = getattr(module, attr)
    return handler


def context(stack: Stack, logical_id: str) -> LambdaContext:
    spec = stack.function(logical_id)
    return LambdaContext(spec, str(uuid.uuid4()), float(spec.timeout))


def reset_process_caches() -> None:
    """Forget settings, services and clients: Lambda's per-process caches, per test here."""
    from taskq import aio, aws, config, wiring

    aio.shutdown()  # the worker's aioboto3 clients belong to the process being forgotten
    config.settings.cache_clear()
    wiring.services.cache_clear()
    aws.forget_clients()


class Lambdas:
    """The stack's functions, invoked in this process with the environment Lambda would give
    them (template variables, region, credentials, the endpoint; None: AWS's, or moto's mock)."""

    def __init__(
        self,
        stack: Stack,
        monkeypatch: Any,
        *,
        endpoint: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.stack = stack
        self.monkeypatch = monkeypatch
        self.endpoint = endpoint
        self.region = region
        self._handlers: dict[str, Handler] = {}

    def environment(self, logical_id: str) -> dict[str, str]:
        from infra.clients import credentials_env

        return {
            **self.stack.function(logical_id).environment,
            **credentials_env(),
            "AWS_ENDPOINT_URL": self.endpoint or "",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": self.stack.function_name(logical_id),
        }

    def invoke(self, logical_id: str, ev: Mapping[str, Any]) -> Any:
        """One invocation; settings, services and clients are rebuilt for it (as in a new
        process), so functions with different environments can take turns."""
        for name, value in self.environment(logical_id).items():
            self.monkeypatch.setenv(name, value)
        reset_process_caches()
        if logical_id not in self._handlers:
            self._handlers[logical_id] = load_handler(logical_id, self.stack)
        return self._handlers[logical_id](copy.deepcopy(dict(ev)), context(self.stack, logical_id))


def http_v2(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The generated HTTP API (2.0) event, re-aimed at another route."""
    ev = copy.deepcopy(event("apigw-http-get-healthz"))
    ev["rawPath"] = path
    ev["requestContext"]["http"].update(method=method, path=path)
    ev["rawQueryString"] = urlencode(query or {})
    ev["queryStringParameters"] = dict(query or {})
    ev["headers"] = {**ev["headers"], **(headers or {})}
    ev["pathParameters"] = {"proxy": path.lstrip("/")}
    if body is None:
        ev.pop("body", None)
        ev["isBase64Encoded"] = False
    else:
        text = body if isinstance(body, str) else json.dumps(body)
        ev["body"] = base64.b64encode(text.encode()).decode()
        ev["isBase64Encoded"] = True
        ev["headers"] = {"content-type": "application/json", **ev["headers"]}
    return ev


def with_headers(ev: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """A copy of an API Gateway event (1.0 or 2.0) with more headers."""
    out = copy.deepcopy(dict(ev))
    out["headers"] = {**(out.get("headers") or {}), **headers}
    if "multiValueHeaders" in out:
        out["multiValueHeaders"] = {
            **(out.get("multiValueHeaders") or {}),
            **{k: [v] for k, v in headers.items()},
        }
    return out


def sqs_records(messages: Sequence[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The generated SQS event carrying real messages (as ReceiveMessage returned them)."""
    template = event("sqs-job-message")["Records"][0]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            md5OfBody=message["MD5OfBody"],
            eventSourceARN=queue_arn,
        )
        records.append(record)
    return {"Records": records}


def job_message_event(job_id: str) -> dict[str, Any]:
    """The generated taskq message event, for the job `job_id` (the checked-in one is zeros)."""
    ev = event("sqs-job-message")
    for record in ev["Records"]:
        record["body"] = record["body"].replace("0" * 32, job_id)
        record["md5OfBody"] = hashlib.md5(
            record["body"].encode(), usedforsecurity=False
        ).hexdigest()
    return ev


def decoded_body(response: Mapping[str, Any]) -> Any:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body) if body else None
