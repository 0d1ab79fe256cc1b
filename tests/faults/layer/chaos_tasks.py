"""The fault suite's task, shipped to the sandboxes as a test-only layer (this directory).

Its payload says how each attempt behaves, so the suite knows what every job should do:
succeed, fail retryably for its first attempts, fail permanently, sleep (past the queue's
visibility timeout, under the task's own timeout), or stall with the task timeout blocked
(past its lease, or past the function's timeout, which kills the invocation).

Every execution appends two lines to TASKQ_CHAOS_LOG, keyed by job id and attempt: `run`
when it starts and `end` with its outcome just before it returns or raises. Each line is one
O_APPEND write, so lines from concurrent sandboxes never interleave; a `run` without its `end`
is an execution that was killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskq.errors import PermanentError, RetryableError
from taskq.tasks import JobContext, task

TASK_TIMEOUT_S = 4.0  # the lease is this plus taskq's 5 s grace


class ChaosPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=0, description="the submission's number in the suite")
    fail_until: int = Field(default=0, ge=0, le=100, description="attempts <= this fail (retry)")
    permanent: bool = Field(default=False, description="fail with PermanentError")
    sleep_s: float = Field(default=0, ge=0, le=60, description="every attempt sleeps this long")
    stall_until: int = Field(default=0, ge=0, le=100, description="attempts <= this stall")
    stall_s: float = Field(default=0, ge=0, le=120, description="stall: sleep, timeout blocked")


def _record(line: str) -> None:
    path = os.environ.get("TASKQ_CHAOS_LOG")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{line} {time.time():.6f} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _stall(seconds: float) -> None:
    """Sleep with SIGALRM blocked, as a task stuck in C code would: its timeout cannot fire.

    A timeout that came due meanwhile is swallowed, so the task then returns normally: late,
    after its lease lapsed (the fencing case), or never, if the function's timeout kills it.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        time.sleep(seconds)
        signal.sigtimedwait({signal.SIGALRM}, 0)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


def _outcome(payload: ChaosPayload, ctx: JobContext) -> dict[str, Any]:
    # Every attempt reports, so progress and line writes meet the suite's AWS faults too
    # (a failed report must never fail, lose or double-run a job).
    ctx.log(f"chaos job {payload.n} attempt {ctx.attempt}")
    ctx.progress(0.5, message="deciding")
    if payload.permanent:
        raise PermanentError(f"chaos job {payload.n} fails for good")
    if ctx.attempt <= payload.fail_until:
        raise RetryableError(f"chaos job {payload.n}: planned failure on attempt {ctx.attempt}")
    return {"n": payload.n, "attempt": ctx.attempt, "pid": os.getpid()}


def _label(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    labels: dict[type[BaseException], str] = {PermanentError: "permanent", RetryableError: "retry"}
    return labels.get(type(exc), "error")


@contextmanager
def _execution(ctx: JobContext) -> Iterator[None]:
    """The `run` line now, the `end` line with the outcome however the body leaves."""
    key = f"{ctx.job_id} {ctx.attempt}"
    _record(f"run {key}")
    failure: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        _record(f"end {key} {_label(failure)}")


@task(name="chaos", max_attempts=3, backoff_base_s=1.0, backoff_cap_s=2.0,
      timeout_s=TASK_TIMEOUT_S)  # fmt: skip
def chaos(payload: ChaosPayload, ctx: JobContext) -> dict[str, Any]:
    """A plain task (the worker's thread pool): a stall is merely left behind at the timeout."""
    with _execution(ctx):
        if ctx.attempt <= payload.stall_until:
            _stall(payload.stall_s)
        if payload.sleep_s:
            time.sleep(payload.sleep_s)
        return _outcome(payload, ctx)


@task(name="chaos_async", max_attempts=3, backoff_base_s=1.0, backoff_cap_s=2.0,
      timeout_s=TASK_TIMEOUT_S)  # fmt: skip
async def chaos_async(payload: ChaosPayload, ctx: JobContext) -> dict[str, Any]:
    """The same as an `async def` task on the worker's event loop. A stall blocks the loop
    (time.sleep), as a task stuck in C code would: no timeout can fire, so it returns late
    after its lease lapsed (fencing decides), or never, if the function's timeout kills it."""
    with _execution(ctx):
        if ctx.attempt <= payload.stall_until:
            time.sleep(payload.stall_s)  # blocks the loop on purpose
        if payload.sleep_s:
            await asyncio.sleep(payload.sleep_s)
        return _outcome(payload, ctx)


class BeatPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(default=-1, description="not a planned job: the suite keys fires by time")


@task(name="chaos_beat", max_attempts=3, backoff_base_s=1.0, backoff_cap_s=2.0,
      timeout_s=TASK_TIMEOUT_S, schedule="rate(1 minute)")  # fmt: skip
def chaos_beat(payload: BeatPayload, ctx: JobContext) -> dict[str, Any]:
    """A periodic task, fired every minute by two racing clocks under the same faults."""
    with _execution(ctx):
        return {"n": payload.n, "attempt": ctx.attempt}


@task(name="chaos_capped", max_attempts=3, backoff_base_s=1.0, backoff_cap_s=2.0,
      timeout_s=TASK_TIMEOUT_S, concurrency=3)  # fmt: skip
def chaos_capped(payload: ChaosPayload, ctx: JobContext) -> dict[str, Any]:
    """The plain chaos task under a concurrency cap of 3 (the suite checks it held)."""
    with _execution(ctx):
        if payload.sleep_s:
            time.sleep(payload.sleep_s)
        return _outcome(payload, ctx)
