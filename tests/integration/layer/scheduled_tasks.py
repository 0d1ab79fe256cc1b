"""Periodic tasks for the scheduling tests, shipped to the functions as a layer (as the
fault suite ships its chaos tasks): one task with two schedules, each every minute."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from taskq.scheduling.declared import Schedule
from taskq.tasks import JobContext, task


class Beat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str


@task(
    schedule=[
        Schedule("rate(1 minute)", name="beat-raced", payload={"source": "raced"}),
        Schedule("rate(1 minute)", name="beat-paused", payload={"source": "paused"}),
    ],
    timeout_s=10,
)
def beat(payload: Beat, ctx: JobContext) -> dict[str, object]:
    return {"source": payload.source, "job": ctx.job_id}


@task(schedule="rate(1 minute)", schedule_payload={"source": "serial"}, schedule_overlap=False)
def serial_beat(payload: Beat, ctx: JobContext) -> dict[str, object]:
    """Never two at once: a fire is skipped while the previous one is unfinished."""
    return {"source": payload.source, "job": ctx.job_id}
