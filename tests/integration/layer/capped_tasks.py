"""Tasks under concurrency caps for the caps tests, shipped to the functions as a layer."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from taskq.tasks import JobContext, task


class Work(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=10)
    customer: str = "-"


@task(concurrency=2, timeout_s=3)
def capped(payload: Work, ctx: JobContext) -> dict[str, object]:
    """At most two at once, across every worker."""
    time.sleep(payload.seconds)
    return {"attempt": ctx.attempt}


@task(concurrency=1, concurrency_key="customer", timeout_s=3)
def per_customer(payload: Work, ctx: JobContext) -> dict[str, object]:
    """At most one at once per customer; customers do not wait for each other."""
    time.sleep(payload.seconds)
    return {"customer": payload.customer}
