"""Process SQS records: claim, run, then complete, retry with backoff, or dead-letter.

Each record's outcome is one of three: acknowledged (left out of batchItemFailures,
so the message is deleted), retried later (its visibility set to the delay and the
record reported failed), or the whole record errors (SQS redelivers it after the
queue's visibility timeout, and its maxReceiveCount is the last safety net).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from taskq import metrics
from taskq.backoff import lease_until, retry_delay
from taskq.errors import InvalidTransition, JobNotFound, ResultRejected, TaskqError, UnknownTask
from taskq.log import logger
from taskq.models import Job, QueueMessage, Status
from taskq.queue import JobQueue, parse_body
from taskq.store import JobStore
from taskq.tasks import JobContext, Task, TaskRegistry
from taskq.text import first_line
from taskq.timeouts import run_with_timeout

RESULT_MAX_BYTES = 64 * 1024  # leaves the 400 KB item room for payload and history
TIME_MARGIN_S = 2.0  # do not start a task the invocation cannot finish


class RetryLater(Exception):
    """Report this record failed; its visibility was already set to when it may run."""


class Worker:
    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        registry: TaskRegistry,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.queue = queue
        self.registry = registry
        self.clock = clock
        self.rand = rand  # the backoff's jitter; tests pin it

    def handle_batch(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """The Lambda entry point's body: a partial batch response for an SQS event."""
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=event,
                record_handler=lambda record: self.process(record, context),
                processor=processor,
                context=context,
            )
        )

    def process(self, record: SQSRecord, context: Any = None) -> None:
        try:
            message = parse_body(record.body)
        except (ValueError, ValidationError) as exc:
            reason = f"malformed message: {first_line(exc)}"
            logger.error(
                "dead-lettering a malformed record",
                extra={"reason": reason, "message_id": record.message_id},
            )
            self.queue.dead_letter(record.body, reason)
            return
        logger.append_keys(job_id=message.job_id, message_id=record.message_id)
        try:
            self._process(record, message, context)
        finally:
            logger.remove_keys(["job_id", "message_id", "attempt"])

    def _process(self, record: SQSRecord, message: QueueMessage, context: Any) -> None:
        task = self._task(message.task)
        timeout = task.policy.timeout_s if task else 5.0
        remaining = _remaining_s(context)
        if remaining is not None and remaining < timeout + TIME_MARGIN_S:
            # Not enough time left in this invocation: let another one take it now.
            self.queue.delay(record.receipt_handle, 0)
            raise RetryLater("not enough time left in this invocation")
        try:
            job = self.store.claim(message.job_id, lease_until(self.clock(), timeout))
        except JobNotFound:
            logger.error("dead-lettering a record for an unknown job")
            self.queue.dead_letter(record.body, f"job {message.job_id} not found")
            return
        except InvalidTransition:
            self._not_claimed(record, message)
            return
        logger.append_keys(attempt=job.attempt)
        if task is None or task.name != job.task:
            self._fail(record, job, f"unknown task {job.task!r}: not in TASKQ_TASK_MODULES")
            return
        self._run(record, job, task)

    def _run(self, record: SQSRecord, job: Job, task: Task) -> None:
        runs = sum(event.kind == Status.RUNNING for event in job.events)
        ctx = JobContext(job.id, job.task, job.attempt, job.max_attempts, runs)
        started = self.clock()
        try:
            payload = task.parse(job.payload)
        except TaskqError as exc:  # the task's model changed since the job was submitted
            self._fail(record, job, f"payload no longer valid: {exc}")
            return
        try:
            result = run_with_timeout(lambda: task.fn(payload, ctx), task.policy.timeout_s)
            result_json = _result_json(result)
        except Exception as exc:  # a task may raise anything; the policy decides
            error = f"{type(exc).__name__}: {first_line(exc)}"
            if task.policy.is_permanent(exc) or isinstance(exc, ResultRejected):
                self._fail(record, job, error)
            elif job.attempt >= job.max_attempts:
                self._fail(record, job, f"{error} (attempts exhausted)")
            else:
                self._retry(record, job, task, error)
            return
        try:
            self.store.complete(job.id, job.attempt, result_json)
        except InvalidTransition as exc:
            # Our lease lapsed and a newer attempt owns the job: drop our result.
            logger.warning("result discarded: the job moved on", extra={"detail": str(exc)})
            return
        logger.info("job completed", extra={"duration_s": round(self.clock() - started, 3)})
        metrics.job_completed(self.clock() - started)

    def _retry(self, record: SQSRecord, job: Job, task: Task, error: str) -> None:
        policy = task.policy
        delay = retry_delay(job.attempt, policy.backoff_base_s, policy.backoff_cap_s, self.rand)
        try:
            self.store.retry(job.id, job.attempt, error, delay)
        except InvalidTransition:
            logger.warning("retry not recorded: the job moved on")
            return
        logger.info("job will retry", extra={"delay_s": delay, "error": error})
        metrics.job_retried()
        self.queue.delay(record.receipt_handle, delay)
        raise RetryLater(error)

    def _fail(self, record: SQSRecord, job: Job, error: str) -> None:
        try:
            job = self.store.fail(job.id, job.attempt, error)
        except InvalidTransition:
            logger.warning("failure not recorded: the job moved on")
            return
        self._to_dlq(record, job)

    def _to_dlq(self, record: SQSRecord, job: Job) -> None:
        """The job is failed: its message belongs in the DLQ (acknowledged here after)."""
        logger.error("job failed", extra={"error": job.error})
        metrics.job_failed()
        self.queue.dead_letter(
            record.body,
            job.error or "failed",
            {"taskq-job-id": job.id, "taskq-task": job.task, "taskq-attempts": str(job.attempt)},
        )

    def _not_claimed(self, record: SQSRecord, message: QueueMessage) -> None:
        """The claim's condition failed: decide from the job's state what the record means."""
        job = self.store.find(message.job_id)
        now = self.clock()
        if job is None:
            self.queue.dead_letter(record.body, f"job {message.job_id} not found")
        elif job.status in (Status.COMPLETED, Status.CANCELLED):
            logger.info("duplicate delivery acknowledged", extra={"status": job.status})
        elif job.status == Status.FAILED:
            # We failed it earlier but crashed before the DLQ send: finish that now.
            self._to_dlq(record, job)
        elif job.status == Status.RUNNING and (job.lease_until or 0) >= now:
            self.queue.delay(record.receipt_handle, int((job.lease_until or now) - now) + 1)
            raise RetryLater("job is running under a live lease elsewhere")
        elif job.status == Status.RUNNING and job.attempt >= job.max_attempts:
            try:
                job = self.store.fail_abandoned(job.id, job.attempt)
            except InvalidTransition:
                raise RetryLater("job changed while failing it") from None
            self._to_dlq(record, job)
        elif job.status == Status.RETRYING and (job.run_after or 0) > now + 1:
            self.queue.delay(record.receipt_handle, int((job.run_after or now) - now) + 1)
            raise RetryLater("retry is not due yet")
        else:
            # pending/retrying with no attempts left, or a race we lost: look again soon.
            self.queue.delay(record.receipt_handle, 5)
            raise RetryLater(f"job is {job.status}; will look again")

    def _task(self, name: str) -> Task | None:
        try:
            return self.registry.get(name)
        except UnknownTask:
            return None


def _result_json(result: Any) -> str:
    try:
        text = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultRejected(f"result is not JSON-serialisable: {exc}") from None
    if len(text.encode()) > RESULT_MAX_BYTES:
        raise ResultRejected(f"result is larger than {RESULT_MAX_BYTES} bytes")
    return text


def _remaining_s(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else None
