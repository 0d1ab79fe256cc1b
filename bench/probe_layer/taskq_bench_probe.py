"""Bench-only probe for the Lambda sandboxes: a `noop` task, and a count of every AWS call.

`make bench` runs the stack with this directory as an extra layer and this module among
TASKQ_TASK_MODULES, so taskq imports it while it builds its services, right after creating
its shared clients (taskq.aws.client, one per process). Importing it then registers
botocore event hooks on those very clients; each call appends one line to a file of this
process's own (no lock across processes, no lost counts), which the bench reads back.

The worker's own calls go through aioboto3 clients that taskq.aio opens on the first call
(after this import), and every one of them is made through taskq.aws.acall: the probe wraps
that function to register the same hooks on each client the first time it is seen
(aiobotocore emits the same events; plain functions are valid handlers there).

The hooks only watch: they change no request. Nothing here runs unless the bench set
TASKQ_BENCH_CALLS_DIR in the function's environment.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from taskq.tasks import JobContext, task

CALLS_DIR_ENV = "TASKQ_BENCH_CALLS_DIR"


class NoopPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


@task(timeout_s=5)
def noop(payload: NoopPayload, ctx: JobContext) -> None:
    """Does nothing: what is left of a job's cost is taskq's own."""


@task(timeout_s=5, concurrency=5)
def noop_capped(payload: NoopPayload, ctx: JobContext) -> None:
    """`noop` under a concurrency cap of 5: what a cap adds to a job's calls."""


class CallRecorder:
    """Appends `time source service operation status retries items returned ms touched`
    per call.

    `items` is what the request carried (batch entries, or 1), `returned` what a receive got
    back (messages; -1 for other calls), `ms` how long the call took, retries included,
    `touched` the attributes an UpdateItem sets or removes (which indexes it writes).
    Lines are written whole and unbuffered, so a reader may read a file while the process
    still writes it.
    """

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build", self._before)
        events.register("after-call", self._after)
        events.register("after-call-error", self._error)

    def _before(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        context["bench_items"] = request_items(params)
        context["bench_touched"] = updated_attributes(params)
        context["bench_model"] = model  # after-call-error is not given the model
        context["bench_t0"] = time.perf_counter()

    def _after(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: Any, **_: Any
    ) -> None:
        retries = int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        returned = len(parsed.get("Messages", [])) if model.name == "ReceiveMessage" else -1
        status = getattr(http_response, "status_code", 0)
        self._write(model, context, status, retries, returned)

    def _error(self, context: Any, **_: Any) -> None:
        model = context.get("bench_model") if isinstance(context, dict) else None
        if model is not None:
            self._write(model, context, 0, 0, -1)

    def _write(self, model: Any, context: Any, status: int, retries: int, returned: int) -> None:
        service = model.service_model.service_name
        items, t0, touched = 1, None, ()
        if isinstance(context, dict):
            items, t0 = int(context.get("bench_items", 1)), context.get("bench_t0")
            touched = context.get("bench_touched", ())
        ms = (time.perf_counter() - t0) * 1000 if t0 is not None else -1.0
        line = (
            f"{time.time():.6f} {self.source} {service} {model.name} {status} {retries} "
            f"{items} {returned} {ms:.2f} {','.join(touched) or '-'}\n"
        )
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", buffering=1, encoding="ascii")  # noqa: SIM115
            self._file.write(line)


def request_items(params: dict[str, Any]) -> int:
    """How many things one request carries: batch entries, batch-written items, else 1."""
    if "Entries" in params:
        return len(params["Entries"])
    if "RequestItems" in params:
        return sum(len(v) for v in params["RequestItems"].values())
    if "TransactItems" in params:
        return len(params["TransactItems"])
    return 1


_CLAUSE = re.compile(r"\b(SET|REMOVE|ADD|DELETE)\s", re.IGNORECASE)


def updated_attributes(params: dict[str, Any]) -> tuple[str, ...]:
    """The top-level attributes an UpdateItem's expression sets or removes, sorted."""
    expression = params.get("UpdateExpression")
    if not isinstance(expression, str):
        return ()
    names = params.get("ExpressionAttributeNames") or {}
    found: set[str] = set()
    for clause in _CLAUSE.split(expression)[2::2]:
        depth, start = 0, 0
        for i, char in enumerate(clause + ","):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == "," and depth == 0:
                target = re.split(r"[=\s\[.]", clause[start:i].strip(), maxsplit=1)[0]
                if target:
                    found.add(str(names.get(target, target)))
                start = i + 1
    return tuple(sorted(found))


def _install() -> None:
    """Hook the process's shared taskq clients (the same lru_cache keys taskq.wiring uses)."""
    from taskq import aws
    from taskq.config import settings

    config = settings()
    source = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "process")
    recorder = CallRecorder(
        Path(os.environ[CALLS_DIR_ENV]) / f"{source}-{os.getpid()}.calls", source
    )
    for service in ("dynamodb", "sqs"):
        recorder.attach(aws.client(service, config.region, config.endpoint_url))
    acall = getattr(aws, "acall", None)
    if acall is not None:
        aws.acall = _hooking(acall, recorder)


def _hooking(acall: Any, recorder: CallRecorder) -> Any:
    """taskq.aws.acall, registering the recorder on each aiobotocore client it first sees."""
    hooked: dict[int, Any] = {}  # id -> client (held, so an id is never reused)

    async def counted(client: Any, service: str, operation: str, kwargs: dict[str, Any]) -> Any:
        if id(client) not in hooked:
            hooked[id(client)] = client
            recorder.attach(client)
        return await acall(client, service, operation, kwargs)

    return counted


if os.environ.get(CALLS_DIR_ENV) and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    _install()
