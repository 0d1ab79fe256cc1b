"""An example task module: copy it, rename it, and list yours in TASKQ_TASK_MODULES.

`greet` is an `async def` task: the worker awaits it on its event loop, so while one job
waits (here on a timer; in your tasks on an HTTP call or a database) the other records of
the same SQS batch run. It needs no network, so it also runs in tests and offline.

    TASKQ_TASK_MODULES=tasks.example make dev
    curl -s -X POST http://127.0.0.1:3000/jobs -H 'content-type: application/json' \\
      -d '{"task":"greet","payload":{"name":"Ada"}}'
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from taskq.tasks import JobContext, task


class GreetPayload(BaseModel):
    """What a `greet` job carries; the API rejects (422) a payload that does not fit."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="who to greet")
    delay_s: float = Field(default=0.1, ge=0, le=5, description="how long to wait first")


@task(max_attempts=3, timeout_s=10)
async def greet(payload: GreetPayload, ctx: JobContext) -> dict[str, object]:
    """Waits `delay_s` without blocking the worker, then returns a greeting (the job's result)."""
    await asyncio.sleep(payload.delay_s)
    return {"greeting": f"Hello, {payload.name}!", "attempt": ctx.attempt}


class TidyPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    older_than_days: int = Field(default=30, ge=1, le=3650)


@task(schedule="rate(1 minute)", schedule_payload={"older_than_days": 30}, timeout_s=10)
def tidy(payload: TidyPayload, ctx: JobContext) -> dict[str, object]:
    """A periodic task: the clock creates exactly one job of it per minute (on the minute,
    UTC), however many clocks run. `taskq schedules ls` shows it; `pause tidy` stops it.
    A nightly one would read: @task(schedule="cron(0 3 * * ? *)", schedule_tz="Europe/Berlin")."""
    return {"checked_older_than_days": payload.older_than_days, "job": ctx.job_id}


class PartnerPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64)
    seconds: float = Field(default=0.5, ge=0, le=5, description="how long the call takes")


@task(concurrency=2, timeout_s=10, priority="high")
async def call_partner(payload: PartnerPayload, ctx: JobContext) -> dict[str, object]:
    """A partner API that allows 2 concurrent requests: at most 2 of these run at once,
    across every worker. The others wait for a slot without using an attempt. Its jobs
    go to the high-priority queue unless a submit asks for another."""
    await asyncio.sleep(payload.seconds)
    return {"order_id": payload.order_id, "attempt": ctx.attempt}


class ImportPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: int = Field(default=400, ge=1, le=100_000)
    step_s: float = Field(default=1.0, ge=0, le=5, description="how long each of 4 steps takes")


@task(timeout_s=25, heartbeat_s=5)
async def import_rows(payload: ImportPayload, ctx: JobContext) -> dict[str, object]:
    """A long task that reports as it goes: `GET /jobs/{id}` shows its progress while it
    runs, `GET /jobs/{id}/logs` (or `taskq logs ID --follow`) its lines. Each report also
    renews its claim: with heartbeat_s=5 a worker that died is noticed after 5 s, not 25."""
    steps = ("read the file", "check the rows", "write the rows", "index the rows")
    for done, step in enumerate(steps):
        ctx.log(f"step {done + 1}/{len(steps)}: {step}")
        await asyncio.sleep(payload.step_s)
        ctx.progress((done + 1) / len(steps), message=step)
    return {"imported": payload.rows}
