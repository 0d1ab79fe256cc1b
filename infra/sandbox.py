"""A local Lambda runtime: each function runs in sandbox processes created on demand and kept warm.

Like Lambda execution environments, a sandbox imports the handler once (cold start), serves
one invocation at a time, is reused while healthy, and is destroyed when it times out or dies.
Separate processes also keep two functions' same-named modules (`app`) apart.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

from infra.template import FunctionSpec

log = logging.getLogger(__name__)

INIT_TIMEOUT_S = 10.0  # Lambda's limit for the init phase (imports, module-level code)
_INHERITED_ENV = (
    "PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
)  # fmt: skip
_SPAWN = multiprocessing.get_context("spawn")


class Invocable(Protocol):
    """What the pollers, schedules and gateway need of a function: LocalFunction here, or
    infra.lambda_endpoint's function in a Lambda container (`make sam-api`)."""

    @property
    def name(self) -> str: ...

    def invoke(self, event: Any) -> Any: ...

    def close(self) -> None: ...


class InvokeError(Exception):
    """An invocation did not return a result."""


class FunctionError(InvokeError):
    """The handler (or its module's import) raised; the sandbox stays warm."""

    def __init__(self, error_type: str, message: str, trace: str = "") -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.trace = trace  # for logs only, never for clients


class FunctionTimeout(InvokeError):
    """The invocation ran past the function's timeout; its sandbox was killed."""


class FunctionCrashed(InvokeError):
    """The sandbox process died during the invocation (or was killed)."""


class LambdaContext:
    """The context object Lambda passes to Python handlers."""

    def __init__(self, spec: FunctionSpec, request_id: str, timeout_s: float) -> None:
        self.function_name = spec.function_name
        self.function_version = "$LATEST"
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = (
            spec.arn or f"arn:aws:lambda:{region}:000000000000:function:{spec.function_name}"
        )
        self.memory_limit_in_mb = spec.memory
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _Sandbox:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def kill(self) -> None:
        """SIGKILL by pid, then reap; safe to call twice."""
        if self.process.pid is not None and self.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(5)
        self.conn.close()


class LocalFunction:
    """One function's pool of sandboxes; `invoke` is thread-safe and blocks for a free one."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        extra_env: Mapping[str, str] | None = None,
        max_concurrency: int = 1,
    ) -> None:
        self.spec = spec
        self.extra_env = dict(extra_env or {})
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()
        self._idle: list[_Sandbox] = []
        self._busy: set[_Sandbox] = set()
        self._closed = False

    @property
    def name(self) -> str:
        return self.spec.function_name

    def invoke(self, event: Any) -> Any:
        """Run the handler on a JSON-serialisable event and return its JSON-decoded result."""
        payload = json.dumps(event)
        with self._slots:
            sandbox = self._checkout()
            try:
                result = self._call(sandbox, payload)
            except FunctionError:
                self._checkin(sandbox)
                raise
            except BaseException:
                self._discard(sandbox)
                raise
            self._checkin(sandbox)
            return result

    def warm(self, *, log_errors: bool = True) -> None:
        """Init one sandbox now and keep it idle for the first invocation, as provisioned
        concurrency does on Lambda.

        `make dev` warms every function at start, so a function whose init fails (a task
        module that cannot be imported) stops the start with that error rather than failing
        its first request; with log_errors=False the caller reports it instead of the sandbox.
        """
        with self._slots:
            sandbox = self._spawn(log_errors=log_errors)
            with self._lock:
                if not self._closed:
                    self._idle.append(sandbox)
                    return
            sandbox.kill()

    def kill_all(self) -> int:
        """Fault hook: SIGKILL every sandbox busy with an invocation; returns how many."""
        with self._lock:
            busy = list(self._busy)
        for sandbox in busy:
            # exitcode reaps a dead one first: a reaped pid may belong to anyone by now
            if sandbox.process.pid is not None and sandbox.process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(sandbox.process.pid, signal.SIGKILL)
        return len(busy)

    def pids(self) -> set[int]:
        """The pids of this function's sandboxes still running: the only pids a fault hook
        may signal. (A pid read elsewhere, e.g. from a log, may since have been reused by
        another process, or as a thread id inside one: signalling that kills its process.)"""
        with self._lock:
            sandboxes = [*self._idle, *self._busy]
        return {
            s.process.pid
            for s in sandboxes
            if s.process.pid is not None and s.process.exitcode is None
        }

    def close(self) -> None:
        """Stop every sandbox: idle ones are asked to exit, busy ones are killed."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for sandbox in idle:
            with contextlib.suppress(OSError):
                sandbox.conn.send(("stop",))
            sandbox.process.join(1)
            sandbox.kill()
        for sandbox in busy:
            sandbox.kill()

    def _checkout(self) -> _Sandbox:
        with self._lock:
            if self._closed:
                raise InvokeError(f"{self.name}: function is closed")
            sandbox = self._idle.pop() if self._idle else None
            if sandbox is not None:
                self._busy.add(sandbox)
                return sandbox
        sandbox = self._spawn()  # cold start, outside the lock
        with self._lock:
            self._busy.add(sandbox)
            if self._closed:
                self._busy.discard(sandbox)
                sandbox.kill()
                raise InvokeError(f"{self.name}: function is closed")
        return sandbox

    def _checkin(self, sandbox: _Sandbox) -> None:
        with self._lock:
            self._busy.discard(sandbox)
            if not self._closed:
                self._idle.append(sandbox)
                return
        sandbox.kill()

    def _discard(self, sandbox: _Sandbox) -> None:
        with self._lock:
            self._busy.discard(sandbox)
        sandbox.kill()

    def _spawn(self, *, log_errors: bool = True) -> _Sandbox:
        conn, child_conn = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_sandbox_main,
            args=(child_conn, self.spec, self._environment(), log_errors),
            name=f"sandbox-{self.name}",
            daemon=True,
        )
        process.start()
        child_conn.close()  # the child's end lives only in the child: its death means EOF
        sandbox = _Sandbox(process, conn)
        try:
            if not conn.poll(INIT_TIMEOUT_S):
                raise FunctionTimeout(f"{self.name}: init timed out after {INIT_TIMEOUT_S} s")
            message = conn.recv()
        except (EOFError, OSError):
            sandbox.kill()
            raise FunctionCrashed(
                f"{self.name}: sandbox exited during init (exit code {process.exitcode})"
            ) from None
        except BaseException:
            sandbox.kill()
            raise
        if message[0] == "error":
            sandbox.kill()
            raise FunctionError(*message[1:])
        return sandbox

    def _call(self, sandbox: _Sandbox, payload: str) -> Any:
        request_id = str(uuid.uuid4())
        timeout = float(self.spec.timeout)
        try:
            sandbox.conn.send(("invoke", request_id, payload, timeout))
            if not sandbox.conn.poll(timeout):
                sandbox.kill()
                log.warning(
                    "%s %s Task timed out after %.2f seconds", self.name, request_id, timeout
                )
                raise FunctionTimeout(f"{self.name}: Task timed out after {timeout:.2f} seconds")
            message = sandbox.conn.recv()
        except (EOFError, OSError):
            sandbox.kill()
            log.warning(
                "%s %s sandbox died (exit code %s)", self.name, request_id, sandbox.process.exitcode
            )
            raise FunctionCrashed(
                f"{self.name}: sandbox exited (exit code {sandbox.process.exitcode})"
            ) from None
        if message[0] == "error":
            raise FunctionError(*message[1:])
        return json.loads(message[1])

    def _environment(self) -> dict[str, str]:
        """What Lambda would set: runtime variables, the function's, then the caller's extras."""
        spec = self.spec
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        env.update(spec.environment)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": (
                    f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
                ),
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "LAMBDA_TASK_ROOT": str(spec.code_uri),
                "_HANDLER": spec.handler,
                "TZ": ":UTC",
            }
        )
        env.update(self.extra_env)
        return env


# --- inside the sandbox process ------------------------------------------------------------


def _sandbox_main(
    conn: Connection, spec: FunctionSpec, env: dict[str, str], log_init_errors: bool = True
) -> None:
    """Init (environment, sys.path, import), then serve invocations until told to stop or EOF.

    Init errors are reported as Lambda's Python runtime reports them: an ImportError as
    Runtime.ImportModuleError, any other exception (a ConfigError raised at module level)
    under its own type, with its traceback in the log unless log_init_errors is off.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops us
    os.dup2(2, 1)  # function logs (print, Powertools' stdout) go to stderr
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    # Lambda's path: the code, the layers, then the runtime's own libraries (not the caller's
    # working tree, so a function importing something it does not ship fails here too).
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    runtime = [
        p for p in sys.path if p and any(Path(p).resolve().is_relative_to(x) for x in prefixes)
    ]
    sys.path[:] = [str(spec.code_uri), *(str(p) for p in spec.layers), *runtime]
    with contextlib.suppress(OSError):
        os.chdir(spec.code_uri)
    module_name, _, attr = spec.handler.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        message = f"Unable to import module '{module_name}': {exc}"
        conn.send(_error("Runtime.ImportModuleError", message, exc, log=log_init_errors))
        return
    except Exception as exc:
        conn.send(_error(type(exc).__name__, str(exc), exc, log=log_init_errors))
        return
    handler = getattr(module, attr, None)
    if not callable(handler):
        message = f"Handler '{attr}' missing on module '{module_name}'"
        conn.send(_error("Runtime.HandlerNotFound", message, None))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message[0] != "invoke":
            return
        _, request_id, payload, timeout = message
        context = LambdaContext(spec, request_id, timeout)
        try:
            result = handler(json.loads(payload), context)
        except Exception as exc:
            conn.send(_error(type(exc).__name__, str(exc), exc))
            continue
        try:
            conn.send(("ok", json.dumps(result)))
        except (TypeError, ValueError) as exc:
            conn.send(_error("Runtime.MarshalError", f"Unable to marshal response: {exc}", None))


def _error(
    error_type: str, message: str, exc: BaseException | None, *, log: bool = True
) -> tuple[str, ...]:
    """An error reply; the traceback (without this runtime's frame) is also logged, as on Lambda."""
    trace = ""
    if exc is not None and exc.__traceback__ is not None:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
    if log:
        print(f"[ERROR] {error_type}: {message}\n{trace}", file=sys.stderr, flush=True)
    return ("error", error_type, message, trace)
