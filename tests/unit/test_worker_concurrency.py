"""A batch's records run concurrently: async tasks on the loop, plain ones in threads;
timeouts, per-record log context and the invocation's deadline hold while they do."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from taskq.jobs import JobService
from taskq.log import logger
from taskq.models import JobRequest, Status
from taskq.queue import AsyncJobQueue, JobQueue
from taskq.store import JobStore
from taskq.store.aio import AsyncJobStore
from taskq.tasks import JobContext, TaskRegistry
from taskq.worker import Worker
from tests.unit.conftest import FakeClock
from tests.unit.test_worker import failures, receive


class Hold(BaseModel):
    seconds: float = 0.2


class InFlight:
    """Counts tasks running at once (from the loop and from threads alike)."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


FLIGHT = InFlight()
RELEASE = threading.Event()  # lets the stuck plain task of a test end


def registry() -> TaskRegistry:
    tasks = TaskRegistry()

    @tasks.task(name="wait_async", timeout_s=5)
    async def wait_async(payload: Hold, ctx: JobContext) -> dict[str, str]:
        FLIGHT.enter()
        try:
            await asyncio.sleep(payload.seconds)
            logger.info("inside the task", extra={"seen_job": ctx.job_id})
            ctx.log(f"ctx.log of {ctx.job_id}")
            return {"job": ctx.job_id}
        finally:
            FLIGHT.leave()

    @tasks.task(name="wait_plain", timeout_s=5)
    def wait_plain(payload: Hold, ctx: JobContext) -> dict[str, str]:
        FLIGHT.enter()
        try:
            RELEASE.wait(payload.seconds)
            logger.info("inside the task", extra={"seen_job": ctx.job_id})
            ctx.log(f"ctx.log of {ctx.job_id}")
            return {"job": ctx.job_id}
        finally:
            FLIGHT.leave()

    @tasks.task(name="overrun_async", timeout_s=0.2, max_attempts=3)
    async def overrun_async(payload: Hold, ctx: JobContext) -> None:
        await asyncio.sleep(30)

    @tasks.task(name="overrun_plain", timeout_s=0.2, max_attempts=3)
    def overrun_plain(payload: Hold, ctx: JobContext) -> None:
        RELEASE.wait(30)

    return tasks


def make(store: JobStore, queue: JobQueue, clock: FakeClock, concurrency: int) -> Worker:
    return Worker(
        AsyncJobStore.beside(store),
        AsyncJobQueue.beside(queue),
        registry(),
        concurrency=concurrency,
        clock=clock,
        rand=lambda: 1.0,
    )


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    global FLIGHT
    FLIGHT = InFlight()
    RELEASE.clear()
    yield
    RELEASE.set()  # never leave a test's thread waiting


def submit_all(store: JobStore, queue: JobQueue, task: str, n: int) -> list[str]:
    service = JobService(store, queue, registry())
    return [service.submit(JobRequest(task=task, payload={})).job.id for _ in range(n)]


@pytest.mark.parametrize("task", ["wait_async", "wait_plain"])
def test_a_batch_runs_its_records_at_once(
    store: JobStore, queue: JobQueue, sqs: Any, clock: FakeClock, task: str
) -> None:
    ids = submit_all(store, queue, task, 6)
    response = make(store, queue, clock, concurrency=10).handle_batch(receive(sqs, queue.queue_url))
    assert failures(response) == set()
    assert FLIGHT.most > 1, "the records of one batch ran one after another"
    for job_id in ids:
        job = store.get(job_id)
        assert job.status == Status.COMPLETED and job.result == {"job": job_id}


def test_concurrency_one_runs_records_one_at_a_time(
    store: JobStore, queue: JobQueue, sqs: Any, clock: FakeClock
) -> None:
    submit_all(store, queue, "wait_async", 3)
    worker = make(store, queue, clock, concurrency=1)
    assert failures(worker.handle_batch(receive(sqs, queue.queue_url))) == set()
    assert FLIGHT.most == 1


@pytest.mark.parametrize("task", ["overrun_async", "overrun_plain"])
def test_an_overrunning_task_is_retried_and_the_batch_does_not_wait_for_it(
    store: JobStore, queue: JobQueue, sqs: Any, clock: FakeClock, task: str
) -> None:
    [job_id] = submit_all(store, queue, task, 1)
    event = receive(sqs, queue.queue_url)
    response = make(store, queue, clock, concurrency=4).handle_batch(event)
    # Returned while the plain task's thread still waits (RELEASE is not set yet).
    assert not RELEASE.is_set()
    assert failures(response) == {event["Records"][0]["messageId"]}
    job = store.get(job_id)
    assert job.status == Status.RETRYING
    assert job.error is not None and job.error.startswith("TaskTimeout")


def test_log_lines_carry_their_own_records_job_id(
    store: JobStore, queue: JobQueue, sqs: Any, clock: FakeClock
) -> None:
    submit_all(store, queue, "wait_async", 3)
    submit_all(store, queue, "wait_plain", 3)
    worker = make(store, queue, clock, concurrency=10)
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(logger.registered_formatter)  # the JSON lines CloudWatch gets
    logger.addHandler(handler)
    try:
        assert failures(worker.handle_batch(receive(sqs, queue.queue_url))) == set()
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    inside = [line for line in lines if line.get("message") == "inside the task"]
    assert len(inside) == 6
    for line in inside:  # interleaved records never borrow each other's keys
        assert line["job_id"] == line["seen_job"]
        assert line["attempt"] == 1
    # ctx.log's lines reach CloudWatch with the same keys, from the loop and from threads
    logged = [line for line in lines if line.get("message", "").startswith("ctx.log of ")]
    assert len(logged) == 6
    assert all(line["message"] == f"ctx.log of {line['job_id']}" for line in logged)
    assert all(line["attempt"] == 1 for line in logged)


def test_records_waiting_for_a_slot_are_handed_back_when_time_runs_short(
    store: JobStore, queue: JobQueue, sqs: Any, clock: FakeClock
) -> None:
    ids = submit_all(store, queue, "wait_async", 2)

    class Invocation:
        """7.8 s left: enough for one record (5 s timeout + 2 s margin), not two."""

        def get_remaining_time_in_millis(self) -> int:
            return 7_800

    class Ticking(FakeClock):
        def __call__(self) -> float:
            self.now += 0.3  # time passes while records run
            return self.now

    ticking = Ticking(clock.now)
    event = receive(sqs, queue.queue_url)
    response = make(store, queue, ticking, concurrency=1).handle_batch(event, Invocation())
    statuses = sorted(store.get(job_id).status for job_id in ids)
    assert statuses == [Status.COMPLETED, Status.PENDING]
    assert len(failures(response)) == 1  # handed back unclaimed: not counted as an attempt
    pending = next(store.get(j) for j in ids if store.get(j).status == Status.PENDING)
    assert pending.attempt == 0
