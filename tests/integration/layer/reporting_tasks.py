"""Tasks that report progress, log lines and heartbeats, for the progress/logs tests;
shipped to the functions as a layer."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, ConfigDict, Field

from taskq.tasks import JobContext, task


class Steps(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(default=4, ge=1, le=50)
    step_s: float = Field(default=0.0, ge=0, le=10)
    fail_first: bool = False  # attempt 1 raises after its lines: a retry follows


@task(timeout_s=25, max_attempts=3, backoff_base_s=1, backoff_cap_s=1)
async def report_steps(payload: Steps, ctx: JobContext) -> dict[str, object]:
    """Logs each step and reports its fraction; async, on the worker's loop."""
    for n in range(payload.steps):
        ctx.log(f"attempt {ctx.attempt} step {n + 1}")
        await asyncio.sleep(payload.step_s)
        ctx.progress((n + 1) / payload.steps, message=f"step {n + 1}")
    if payload.fail_first and ctx.attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return {"steps": payload.steps}


@task(timeout_s=25)
def report_steps_sync(payload: Steps, ctx: JobContext) -> dict[str, object]:
    """The same from a plain task, in the worker's thread pool."""
    for n in range(payload.steps):
        ctx.log(f"sync step {n + 1}")
        time.sleep(payload.step_s)
        ctx.progress({"done": n + 1, "of": payload.steps})
    return {"steps": payload.steps}


class Chatter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: int = Field(ge=0, le=10_000)
    chars: int = Field(default=10, ge=1, le=5000)


@task(timeout_s=25)
def chatty(payload: Chatter, ctx: JobContext) -> int:
    """More lines (or bytes) than an attempt keeps: the rest is counted in one marker."""
    for n in range(payload.lines):
        ctx.log(f"{n:06d} " + "x" * payload.chars)
    return payload.lines


class Beats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=20)
    every_s: float = Field(default=0.5, gt=0, le=5)


@task(timeout_s=25, heartbeat_s=2, max_attempts=3)
async def heartbeating(payload: Beats, ctx: JobContext) -> dict[str, object]:
    """Runs far past its 2 s lease (plus grace), renewing it as it goes."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < payload.seconds:
        ctx.progress(min(1.0, elapsed / payload.seconds))
        await asyncio.sleep(payload.every_s)
    return {"attempt": ctx.attempt, "runs": ctx.runs}
