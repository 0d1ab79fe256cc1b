"""One DLQ message per failed job, and messages that do not match their job left harmless."""

from __future__ import annotations

import json
from typing import Any

from taskq.dlq_entries import DeadEntry, Kind
from taskq.jobs import JobService
from taskq.models import JobRequest, Status
from taskq.queue import AsyncJobQueue, DeadLetter, JobQueue
from taskq.store import JobStore
from taskq.store.aio import AsyncJobStore
from taskq.store.transitions import HANDOFF_HOLD_S
from taskq.tasks import JobContext, TaskRegistry
from taskq.worker import Worker
from tests.unit import test_worker
from tests.unit.conftest import FakeClock
from tests.unit.test_worker import RUNS, Spec, dead_letters, failures, receive, submit

parts = test_worker.parts  # the fixture: a JobService and a Worker over moto


def redeliver(sqs: Any, queue: JobQueue, job_id: str, task: str = "probe") -> None:
    """A duplicate of a job's message, as SQS's at-least-once delivery (or a forger) sends."""
    body = json.dumps({"v": 1, "job_id": job_id, "task": task})
    sqs.send_message(QueueUrl=queue.queue_url, MessageBody=body)


def test_a_failed_jobs_duplicate_delivery_adds_no_second_dlq_message(
    parts: tuple[JobService, Worker], sqs: Any, queue: JobQueue
) -> None:
    service, worker = parts
    job_id = submit(service, "permanent")
    assert failures(worker.handle_batch(receive(sqs, queue.queue_url))) == set()
    job = service.get(job_id)
    assert job.status == Status.FAILED and job.dead_lettered and job.handoff
    for _ in range(2):
        redeliver(sqs, queue, job_id)
        assert failures(worker.handle_batch(receive(sqs, queue.queue_url))) == set()
    [dead] = dead_letters(sqs, queue)
    assert dead["MessageAttributes"]["taskq-handoff"]["StringValue"] == job.handoff


def test_a_sender_that_died_before_the_dlq_send_is_taken_over_once_stale(
    parts: tuple[JobService, Worker],
    sqs: Any,
    queue: JobQueue,
    store: JobStore,
    clock: FakeClock,
) -> None:
    service, worker = parts
    job_id = submit(service, "ok")
    receive(sqs, queue.queue_url)  # the original message, now in flight
    claimed = store.claim(job_id, clock() + 30)
    died = store.fail(job_id, claimed.attempt, "its worker failed it, then died")
    redeliver(sqs, queue, job_id)
    event = receive(sqs, queue.queue_url)
    # Too early to tell a dead sender from a slow one: look again later, send nothing.
    assert failures(worker.handle_batch(event)) == {event["Records"][0]["messageId"]}
    assert dead_letters(sqs, queue) == []
    clock.advance(HANDOFF_HOLD_S + 1)
    assert failures(worker.handle_batch(event)) == set()
    [dead] = dead_letters(sqs, queue)
    job = service.get(job_id)
    assert job.dead_lettered and job.handoff != died.handoff
    assert dead["MessageAttributes"]["taskq-handoff"]["StringValue"] == job.handoff
    assert RUNS == []


def test_a_message_naming_another_task_leaves_its_job_untouched(
    parts: tuple[JobService, Worker], sqs: Any, queue: JobQueue
) -> None:
    service, worker = parts
    job_id = submit(service, "ok")
    real = receive(sqs, queue.queue_url)  # hold the real message aside
    for task in ("probe_other", "unregistered"):
        redeliver(sqs, queue, job_id, task=task)
    assert failures(worker.handle_batch(receive(sqs, queue.queue_url))) == set()
    job = service.get(job_id)
    assert job.status == Status.PENDING and job.attempt == 0 and RUNS == []
    reasons = [
        d["MessageAttributes"]["taskq-reason"]["StringValue"] for d in dead_letters(sqs, queue)
    ]
    assert len(reasons) == 2 and all("is 'probe'" in r for r in reasons)
    # The real message still runs the job.
    assert failures(worker.handle_batch(real)) == set()
    assert service.get(job_id).status == Status.COMPLETED


def _entry(body: str, attributes: dict[str, str], store: JobStore, job_id: str) -> DeadEntry:
    message = DeadLetter("m1", "h1", body, attributes)
    return DeadEntry.read(message, {job_id: store.get(job_id)})


def test_the_dlq_tells_a_superseded_copy_and_a_mismatched_one(
    parts: tuple[JobService, Worker], store: JobStore, clock: FakeClock
) -> None:
    service, _ = parts
    job_id = submit(service, "ok")
    claimed = store.claim(job_id, clock() + 30)
    failed = store.fail(job_id, claimed.attempt, "boom")
    body = json.dumps({"v": 1, "job_id": job_id, "task": "probe"})
    assert _entry(body, {"taskq-handoff": failed.handoff or ""}, store, job_id).kind == Kind.FAILED
    assert _entry(body, {"taskq-handoff": "-"}, store, job_id).kind == Kind.FAILED
    assert _entry(body, {"taskq-handoff": "0" * 32}, store, job_id).kind == Kind.STALE
    forged = json.dumps({"v": 1, "job_id": job_id, "task": "other"})
    assert _entry(forged, {}, store, job_id).kind == Kind.ORPHAN


def test_redrive_clears_the_hand_off(
    parts: tuple[JobService, Worker], store: JobStore, clock: FakeClock
) -> None:
    service, _ = parts
    job_id = submit(service, "ok")
    claimed = store.claim(job_id, clock() + 30)
    store.fail(job_id, claimed.attempt, "boom")
    redriven = store.redrive(job_id)
    assert redriven.handoff is None and redriven.handoff_until is None
    assert not redriven.dead_lettered


def test_an_attempt_that_lost_its_job_to_a_failure_keeps_the_message_for_the_hand_off(
    store: JobStore, queue: JobQueue, sqs: Any, clock: FakeClock
) -> None:
    """The 10,000-job fault run's lost DLQ message: while a slow attempt ran, another
    delivery failed the job (its lease had lapsed, no attempts left) and died before its
    DLQ send. The slow attempt's outcome is refused; acknowledging its record deleted the
    job's last message, and nothing ever sent the DLQ copy. Now the record stays until the
    hand-off is done: looked at again while the failer's hold runs, taken over after."""
    registry = TaskRegistry()

    @registry.task(name="overtaken", max_attempts=1)
    def overtaken(payload: Spec, ctx: JobContext) -> str:
        store.fail(ctx.job_id, ctx.attempt, "found abandoned by another delivery, which died")
        return "too late"

    service = JobService(store, queue, registry)
    worker = Worker(AsyncJobStore.beside(store), AsyncJobQueue.beside(queue), registry, clock=clock)
    job_id = service.submit(JobRequest(task="overtaken", payload={})).job.id
    event = receive(sqs, queue.queue_url)
    assert failures(worker.handle_batch(event)) == {event["Records"][0]["messageId"]}
    assert dead_letters(sqs, queue) == []  # the failer's hold still runs: nothing sent yet
    clock.advance(HANDOFF_HOLD_S + 1)
    assert failures(worker.handle_batch(event)) == set()
    [dead] = dead_letters(sqs, queue)
    job = service.get(job_id)
    assert job.status == Status.FAILED and job.dead_lettered
    assert dead["MessageAttributes"]["taskq-handoff"]["StringValue"] == job.handoff
