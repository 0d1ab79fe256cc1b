"""The worker's record outcomes, against moto's SQS and DynamoDB (in-process)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from taskq.errors import PermanentError, RetryableError
from taskq.jobs import JobService
from taskq.models import JobRequest, Status
from taskq.queue import AsyncJobQueue, JobQueue
from taskq.store import JobStore
from taskq.store.aio import AsyncJobStore
from taskq.tasks import JobContext, TaskRegistry
from taskq.worker import Worker
from tests.unit.conftest import FakeClock


class Spec(BaseModel):
    outcome: str = "ok"


RUNS: list[tuple[str, int]] = []


def make_registry() -> TaskRegistry:
    registry = TaskRegistry()

    @registry.task(name="probe", max_attempts=3, backoff_base_s=4, backoff_cap_s=60)
    def probe(payload: Spec, ctx: JobContext) -> Any:
        RUNS.append((ctx.job_id, ctx.attempt))
        if payload.outcome == "retry":
            raise RetryableError("not yet")
        if payload.outcome == "permanent":
            raise PermanentError("never")
        if payload.outcome == "crash":
            raise ZeroDivisionError("division by zero")
        if payload.outcome == "unjsonable":
            return {1, 2}
        return {"done": ctx.attempt}

    @registry.task(name="probe_other")
    def probe_other(payload: Spec, ctx: JobContext) -> Any:
        RUNS.append((ctx.job_id, ctx.attempt))
        return None

    return registry


@pytest.fixture
def parts(store: JobStore, queue: JobQueue, clock: FakeClock) -> tuple[JobService, Worker]:
    RUNS.clear()
    registry = make_registry()
    return JobService(store, queue, registry), Worker(
        AsyncJobStore.beside(store),
        AsyncJobQueue.beside(queue),
        registry,
        clock=clock,
        rand=lambda: 1.0,
    )


def receive(sqs: Any, url: str, n: int = 10) -> dict[str, Any]:
    """Receive like Lambda's event source mapping and shape the event as Lambda does."""
    messages = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=n,
        AttributeNames=["All"],
        VisibilityTimeout=30,
        WaitTimeSeconds=0,  # the queue long-polls by default (20 s)
    ).get("Messages", [])
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def failures(response: dict[str, Any]) -> set[str]:
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def dead_letters(sqs: Any, queue: JobQueue) -> list[dict[str, Any]]:
    return sqs.receive_message(
        QueueUrl=queue.dlq_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        WaitTimeSeconds=0,
    ).get("Messages", [])


def submit(service: JobService, outcome: str) -> str:
    return service.submit(JobRequest(task="probe", payload={"outcome": outcome})).job.id


def test_success_is_acknowledged_and_completed(parts: Any, sqs: Any, queue: JobQueue) -> None:
    service, worker = parts
    job_id = submit(service, "ok")
    response = worker.handle_batch(receive(sqs, queue.queue_url))
    assert failures(response) == set()
    job = service.get(job_id)
    assert job.status == Status.COMPLETED and job.result == {"done": 1}


def test_a_duplicate_delivery_runs_nothing(parts: Any, sqs: Any, queue: JobQueue) -> None:
    service, worker = parts
    job_id = submit(service, "ok")
    event = receive(sqs, queue.queue_url)
    worker.handle_batch(event)
    again = worker.handle_batch(event)  # SQS delivered the same message twice
    assert failures(again) == set()
    assert [(job_id, 1)] == RUNS
    assert [e.kind for e in service.get(job_id).events].count("completed") == 1


def test_retryable_error_backs_off_and_reports_the_record(
    parts: Any, sqs: Any, queue: JobQueue, clock: FakeClock
) -> None:
    service, worker = parts
    job_id = submit(service, "retry")
    event = receive(sqs, queue.queue_url)
    response = worker.handle_batch(event)
    assert failures(response) == {event["Records"][0]["messageId"]}
    job = service.get(job_id)
    assert job.status == Status.RETRYING and job.error == "RetryableError: not yet"
    delay = job.events[-1].delay_s
    assert delay == 4  # the ceiling for attempt 1 with base 4 (jitter pinned to its top)
    # The message is hidden for the backoff: nothing to receive right now.
    assert receive(sqs, queue.queue_url)["Records"] == []


def test_exhausted_attempts_fail_into_the_dlq(
    parts: Any, sqs: Any, queue: JobQueue, clock: FakeClock
) -> None:
    service, worker = parts
    job_id = submit(service, "retry")
    event = receive(sqs, queue.queue_url)
    for _ in range(3):
        response = worker.handle_batch(event)
        clock.advance(120)
    assert failures(response) == set()  # the last attempt acknowledges: it moved to the DLQ
    job = service.get(job_id)
    assert job.status == Status.FAILED and job.attempt == 3
    assert "attempts exhausted" in (job.error or "")
    [dead] = dead_letters(sqs, queue)
    assert json.loads(dead["Body"])["job_id"] == job_id
    assert dead["MessageAttributes"]["taskq-job-id"]["StringValue"] == job_id
    assert dead["MessageAttributes"]["taskq-attempts"]["StringValue"] == "3"


@pytest.mark.parametrize("outcome", ["permanent", "unjsonable"])
def test_permanent_errors_fail_at_once(parts: Any, sqs: Any, queue: JobQueue, outcome: str) -> None:
    service, worker = parts
    job_id = submit(service, outcome)
    assert failures(worker.handle_batch(receive(sqs, queue.queue_url))) == set()
    job = service.get(job_id)
    assert job.status == Status.FAILED and job.attempt == 1
    assert len(dead_letters(sqs, queue)) == 1


def test_an_unexpected_exception_is_retried(parts: Any, sqs: Any, queue: JobQueue) -> None:
    service, worker = parts
    job_id = submit(service, "crash")
    worker.handle_batch(receive(sqs, queue.queue_url))
    job = service.get(job_id)
    assert job.status == Status.RETRYING
    assert job.error == "ZeroDivisionError: division by zero"


def test_a_job_running_under_a_live_lease_is_not_run_again(
    parts: Any, sqs: Any, queue: JobQueue, store: JobStore, clock: FakeClock
) -> None:
    service, worker = parts
    job_id = submit(service, "ok")
    store.claim(job_id, clock() + 60)  # another worker holds it
    event = receive(sqs, queue.queue_url)
    assert failures(worker.handle_batch(event)) == {event["Records"][0]["messageId"]}
    assert RUNS == []
    assert service.get(job_id).status == Status.RUNNING


def test_malformed_records_go_to_the_dlq_and_spare_the_batch(
    parts: Any, sqs: Any, queue: JobQueue
) -> None:
    service, worker = parts
    good = submit(service, "ok")
    for body in [
        "not json",
        '{"job_id": "nope"}',
        json.dumps({"job_id": "a" * 32, "task": "probe"}),
    ]:
        sqs.send_message(QueueUrl=queue.queue_url, MessageBody=body)
    event = receive(sqs, queue.queue_url)
    assert len(event["Records"]) == 4
    assert failures(worker.handle_batch(event)) == set()
    assert service.get(good).status == Status.COMPLETED
    reasons = sorted(
        d["MessageAttributes"]["taskq-reason"]["StringValue"] for d in dead_letters(sqs, queue)
    )
    assert len(reasons) == 3
    assert any("not found" in r for r in reasons)
    assert sum("malformed" in r for r in reasons) == 2


def test_a_cancelled_job_is_acknowledged_unrun(parts: Any, sqs: Any, queue: JobQueue) -> None:
    service, worker = parts
    job_id = submit(service, "ok")
    service.cancel(job_id)
    assert failures(worker.handle_batch(receive(sqs, queue.queue_url))) == set()
    assert RUNS == []
    assert service.get(job_id).status == Status.CANCELLED


def test_an_abandoned_last_attempt_is_failed_on_redelivery(
    parts: Any, sqs: Any, queue: JobQueue, store: JobStore, clock: FakeClock
) -> None:
    service, worker = parts
    job_id = service.submit(
        JobRequest(task="probe", payload={"outcome": "ok"}, max_attempts=1)
    ).job.id
    store.claim(job_id, clock() + 10)  # its worker then died
    clock.advance(60)
    assert failures(worker.handle_batch(receive(sqs, queue.queue_url))) == set()
    assert service.get(job_id).status == Status.FAILED
    assert RUNS == []
    assert len(dead_letters(sqs, queue)) == 1


def test_no_task_starts_without_time_to_finish(parts: Any, sqs: Any, queue: JobQueue) -> None:
    service, worker = parts
    job_id = submit(service, "ok")

    class AlmostOut:
        def get_remaining_time_in_millis(self) -> int:
            return 500

    event = receive(sqs, queue.queue_url)
    assert failures(worker.handle_batch(event, AlmostOut())) == {event["Records"][0]["messageId"]}
    assert service.get(job_id).status == Status.PENDING
