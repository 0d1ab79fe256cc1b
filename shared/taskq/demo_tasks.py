"""Demo tasks that show the lifecycle: one that succeeds, two that take time (a plain one
and an async one), one that fails."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskq.errors import RetryableError
from taskq.tasks import JobContext, task


class EchoPayload(BaseModel):
    model_config = ConfigDict(extra="allow")


class SleepPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=900, description="how long to sleep")


class FailPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    times: int = Field(ge=0, le=100, description="attempts that fail before one succeeds")


@task(timeout_s=5)
def echo(payload: EchoPayload, ctx: JobContext) -> dict[str, Any]:
    """Returns its payload."""
    return payload.model_dump()


@task(timeout_s=20)
def sleep(payload: SleepPayload, ctx: JobContext) -> dict[str, float]:
    """Sleeps; past its 20 s timeout it is interrupted and retried like any failure."""
    time.sleep(payload.seconds)
    return {"slept": payload.seconds}


@task(timeout_s=20)
async def sleep_async(payload: SleepPayload, ctx: JobContext) -> dict[str, float]:
    """Awaits instead of blocking: ten of these in one batch take one sleep, not ten."""
    await asyncio.sleep(payload.seconds)
    return {"slept": payload.seconds}


@task(max_attempts=3, backoff_base_s=1.0, backoff_cap_s=30.0, timeout_s=5)
def fail(payload: FailPayload, ctx: JobContext) -> dict[str, int]:
    """Fails (retryably) on the job's first `times` attempts, counting every attempt the job
    ever made (a redrive's fresh budget does not start the count again), then succeeds."""
    if ctx.runs <= payload.times:
        raise RetryableError(f"planned failure {ctx.runs} of {payload.times}")
    return {"succeeded_on_attempt": ctx.runs}
