"""A capped job's slot must outlive its attempt's lease: a take that itself outlasts the
margin (retries, a queue of takes) gives the slot back and waits, using no attempt."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from taskq.caps import HOLD_MARGIN_S, Caps
from taskq.jobs import JobService
from taskq.models import JobRequest, Status
from taskq.queue import AsyncJobQueue, JobQueue
from taskq.store import JobStore
from taskq.store.aio import AsyncJobStore
from taskq.tasks import JobContext, TaskRegistry
from taskq.worker import Worker
from tests.unit.conftest import FakeClock
from tests.unit.test_worker import failures, receive


class Empty(BaseModel):
    pass


def registry() -> TaskRegistry:
    tasks = TaskRegistry()

    @tasks.task(name="capped", timeout_s=5, concurrency=1)
    def capped(payload: Empty, ctx: JobContext) -> dict[str, bool]:
        return {"ran": True}

    return tasks


def worker(store: JobStore, queue: JobQueue, clock: FakeClock) -> Worker:
    return Worker(
        AsyncJobStore.beside(store),
        AsyncJobQueue.beside(queue),
        registry(),
        concurrency=1,
        clock=clock,
        rand=lambda: 0.0,
    )


def submit(store: JobStore, queue: JobQueue) -> str:
    return JobService(store, queue, registry()).submit(JobRequest(task="capped")).job.id


def test_a_quick_take_runs_the_job_and_frees_the_slot(
    store: JobStore, queue: JobQueue, sqs: Any, clock: FakeClock
) -> None:
    job_id = submit(store, queue)
    response = worker(store, queue, clock).handle_batch(receive(sqs, queue.queue_url))
    assert failures(response) == set()
    assert store.get(job_id).status == Status.COMPLETED
    holders = store.db.get_item(TableName=store.table, Key={"id": {"S": "cap:capped"}})
    assert holders["Item"]["holders"]["M"] == {}  # given back after the outcome


def test_a_take_slower_than_the_margin_gives_the_slot_back_and_waits(
    store: JobStore, queue: JobQueue, sqs: Any, clock: FakeClock, monkeypatch: Any
) -> None:
    job_id = submit(store, queue)
    take = Caps.take

    async def slow_take(self: Caps, *args: Any) -> Any:
        hold = await take(self, *args)
        clock.advance(HOLD_MARGIN_S + 1)  # the take took longer than the slot's margin
        return hold

    monkeypatch.setattr(Caps, "take", slow_take)
    response = worker(store, queue, clock).handle_batch(receive(sqs, queue.queue_url))
    assert failures(response) == set()  # this delivery is acknowledged ...
    job = store.get(job_id)
    assert job.status == Status.PENDING and job.attempt == 0  # ... and no attempt was used
    holders = store.db.get_item(TableName=store.table, Key={"id": {"S": "cap:capped"}})
    assert holders["Item"]["holders"]["M"] == {}  # the slot went back
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"  # sent again, for later
