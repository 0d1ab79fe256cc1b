"""Process SQS batches: the records of one batch run concurrently, each claimed, run,
then completed, retried with backoff, or dead-lettered.

Each record's outcome is one of three: acknowledged (left out of batchItemFailures,
so the message is deleted), retried later (its visibility set to the delay and the
record reported failed), or handed back at once (visibility 0, reported failed) when
the invocation has no time left to run it. A record whose processing raises is
reported failed: SQS redelivers it after the queue's visibility timeout, and its
maxReceiveCount is the last safety net.

`async def` tasks share the process's event loop; plain ones run in a bounded thread
pool (taskq.timeouts). At most `concurrency` records are in flight at once; a record
waiting for its turn has not been claimed, so no lease runs down while it waits.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from taskq import aio, metrics
from taskq.backoff import lease_until, retry_delay
from taskq.caps import HOLD_MARGIN_S, Cap, Caps, Hold, wait_s
from taskq.errors import InvalidTransition, JobNotFound, ResultRejected, TaskqError
from taskq.log import logger
from taskq.models import Job, QueueMessage, Status
from taskq.progress import AttemptReport
from taskq.queue import AsyncJobQueue, parse_body
from taskq.store.aio import AsyncJobStore
from taskq.store.lines import AsyncLineWriter
from taskq.store.transitions import HANDOFF_HOLD_S
from taskq.tasks import JobContext, Task, TaskRegistry
from taskq.text import first_line
from taskq.timeouts import TaskRunner

RESULT_MAX_BYTES = 64 * 1024  # leaves the 400 KB item room for payload and history
TIME_MARGIN_S = 2.0  # do not start a task the invocation cannot finish
UNKNOWN_TASK_TIMEOUT_S = 5.0
DEFAULT_CONCURRENCY = 10


class RetryLater(Exception):
    """Report this record failed; its visibility was already set to when it may run."""


class Worker:
    def __init__(
        self,
        store: AsyncJobStore,
        queue: AsyncJobQueue,
        registry: TaskRegistry,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        lines: AsyncLineWriter | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.lines = lines  # where ctx.log's lines go; None: CloudWatch only
        self.queue = queue
        self.registry = registry
        self.caps = Caps(store.table, store.db, clock)
        self.concurrency = max(1, concurrency)
        self.runner = TaskRunner(self.concurrency)
        self.clock = clock
        self.rand = rand  # the backoff's jitter; tests pin it
        self._handoff_until: float | None = None

    def handle_batch(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """The Lambda entry point's body: a partial batch response for an SQS event."""
        return aio.run(self.process_batch(event, context))

    async def process_batch(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        raw_records = event.get("Records") if isinstance(event, dict) else None
        if not isinstance(raw_records, list) or not all(isinstance(r, dict) for r in raw_records):
            # Not an SQS batch at all: refused whole, nothing touched (Lambda retries it).
            raise ValueError("Unexpected batch event type: expected an SQS event's Records list")
        records = [SQSRecord(raw) for raw in raw_records]
        remaining = _remaining_s(context)
        deadline = None if remaining is None else self.clock() + remaining
        # One invocation at a time per process (as Lambda runs them): its hand-offs end here.
        self._handoff_until = deadline
        slots = asyncio.Semaphore(self.concurrency)

        async def settle(record: SQSRecord) -> bool:
            async with slots:
                return await self._settle(record, deadline)

        # gather runs each record in a task of its own, with its own copy of the log context.
        acknowledged = await asyncio.gather(*(settle(record) for record in records))
        return {
            "batchItemFailures": [
                {"itemIdentifier": record.message_id}
                for record, ok in zip(records, acknowledged, strict=True)
                if not ok
            ]
        }

    async def _settle(self, record: SQSRecord, deadline: float | None) -> bool:
        """True: acknowledge the record; False: report it failed. Never raises."""
        try:
            await self.process(record, deadline)
        except RetryLater:
            return False
        except Exception:
            logger.exception("record failed; SQS will redeliver it")
            return False
        return True

    async def process(self, record: SQSRecord, deadline: float | None = None) -> None:
        try:
            message = parse_body(record.body)
        except (ValueError, ValidationError) as exc:
            reason = f"malformed message: {first_line(exc)}"
            logger.error(
                "dead-lettering a malformed record",
                extra={"reason": reason, "message_id": record.message_id},
            )
            await self.queue.dead_letter(record.body, reason)
            return
        logger.thread_safe_append_keys(job_id=message.job_id, message_id=record.message_id)
        await self._claim_and_run(record, message, deadline)

    async def _claim_and_run(
        self, record: SQSRecord, message: QueueMessage, deadline: float | None
    ) -> None:
        task = self._task(message.task)
        timeout = task.policy.timeout_s if task else UNKNOWN_TASK_TIMEOUT_S
        now = self.clock()
        if deadline is not None and deadline - now < timeout + TIME_MARGIN_S:
            # Not enough time left in this invocation: let another one take it now.
            await self.queue.delay(record.receipt_handle, 0, record.event_source_arn)
            raise RetryLater("not enough time left in this invocation")
        hold: Hold | None = None
        if task is not None and task.cap is not None:
            hold_s = lease_until(0.0, timeout) + HOLD_MARGIN_S
            hold = await self._take_slot(record, message, task.cap, hold_s)
            if hold is None:
                return  # sent again for later; this delivery is acknowledged
            now = self.clock()  # the attempt starts now, after the slot (its event, its lease)
            if lease_until(now, timeout) > hold.until:
                # The take's write outlasted the margin (botocore retries): the slot would
                # lapse before this attempt's lease, and a killed attempt's slot could go to
                # another while its lease still runs. Give it back and wait instead.
                await self.caps.release(hold)
                await self._wait_for_slot(record)
                return
        try:
            await self._claim_then_run(record, message, task, now, timeout)
        finally:
            if hold is not None:
                await self.caps.release(hold)

    async def _take_slot(
        self, record: SQSRecord, message: QueueMessage, cap: Cap, hold_s: float
    ) -> Hold | None:
        """A slot of the task's cap, or None: then no attempt was used, and the message was
        sent again with a short jittered delay (a fresh message: the wait never counts
        towards maxReceiveCount)."""
        payload = None
        if cap.key is not None:
            job = await self.store.find(message.job_id)
            payload = job.payload if job is not None else None
        hold = await self.caps.take(cap, cap.item_id(message.task, payload), message.job_id, hold_s)
        if hold is None:
            await self._wait_for_slot(record)
        return hold

    async def _wait_for_slot(self, record: SQSRecord) -> None:
        """Send the message again with a short jittered delay; no attempt is used."""
        delay = wait_s(self.rand)
        logger.info("no free slot under the task's cap; waiting", extra={"delay_s": delay})
        await self.queue.requeue(record.body, delay, record.event_source_arn)

    async def _claim_then_run(
        self,
        record: SQSRecord,
        message: QueueMessage,
        task: Task | None,
        now: float,
        timeout: float,
    ) -> None:
        try:
            # The lease counts from now, when the attempt really starts.
            lease_s = task.policy.lease_s if task is not None else timeout
            claim = self.store.transitions.claim(
                message.job_id, lease_until(now, lease_s), now, task=message.task
            )
            job = await self.store.apply(claim)
        except JobNotFound:
            logger.error("dead-lettering a record for an unknown job")
            await self.queue.dead_letter(record.body, f"job {message.job_id} not found")
            return
        except InvalidTransition:
            await self._not_claimed(record, message)
            return
        logger.thread_safe_append_keys(attempt=job.attempt)
        if task is None or task.name != job.task:
            await self._fail(record, job, f"unknown task {job.task!r}: not in TASKQ_TASK_MODULES")
            return
        await self._run(record, job, task)

    async def _run(self, record: SQSRecord, job: Job, task: Task) -> None:
        runs = sum(event.kind == Status.RUNNING for event in job.events)
        report = self._report(record, job, task, runs)
        ctx = JobContext(job.id, job.task, job.attempt, job.max_attempts, runs, report)
        started = self.clock()
        try:
            payload = task.parse(job.payload)
        except TaskqError as exc:  # the task's model changed since the job was submitted
            await self._fail(record, job, f"payload no longer valid: {exc}")
            return
        try:
            result = await report.alongside(
                self.runner.run(
                    task.fn, (payload, ctx), is_async=task.is_async, timeout_s=task.policy.timeout_s
                )
            )
            result_json = _result_json(result)
        except Exception as exc:  # a task may raise anything; the policy decides
            await self._after_failure(record, job, task, exc)
            return
        try:
            await self.store.apply(
                self.store.transitions.complete(job.id, job.attempt, result_json, self.clock())
            )
        except InvalidTransition as exc:
            # Our lease lapsed and a newer attempt owns the job: drop our result.
            logger.warning("result discarded: the job moved on", extra={"detail": str(exc)})
            await self._moved_on(record, job.id)
            return
        logger.info("job completed", extra={"duration_s": round(self.clock() - started, 3)})
        metrics.job_completed(self.clock() - started)

    def _report(self, record: SQSRecord, job: Job, task: Task, runs: int) -> AttemptReport:
        async def extend_visibility(seconds: int) -> None:
            await self.queue.delay(record.receipt_handle, seconds, record.event_source_arn)

        return AttemptReport(
            job_id=job.id,
            attempt=job.attempt,
            run=runs,
            store=self.store,
            lines=self.lines,
            heartbeat_s=task.policy.heartbeat_s,
            extend_visibility=extend_visibility,
            clock=self.clock,
        )

    async def _after_failure(
        self, record: SQSRecord, job: Job, task: Task, exc: BaseException
    ) -> None:
        error = f"{type(exc).__name__}: {first_line(exc)}"
        if task.policy.is_permanent(exc) or isinstance(exc, ResultRejected):
            await self._fail(record, job, error)
        elif job.attempt >= job.max_attempts:
            await self._fail(record, job, f"{error} (attempts exhausted)")
        else:
            await self._retry(record, job, task, error)

    async def _retry(self, record: SQSRecord, job: Job, task: Task, error: str) -> None:
        policy = task.policy
        delay = retry_delay(job.attempt, policy.backoff_base_s, policy.backoff_cap_s, self.rand)
        try:
            write = self.store.transitions.retry(job.id, job.attempt, error, delay, self.clock())
            await self.store.apply(write)
        except InvalidTransition:
            logger.warning("retry not recorded: the job moved on")
            await self._moved_on(record, job.id)
            return
        logger.info("job will retry", extra={"delay_s": delay, "error": error})
        metrics.job_retried()
        await self.queue.delay(record.receipt_handle, delay, record.event_source_arn)
        raise RetryLater(error)

    async def _fail(self, record: SQSRecord, job: Job, error: str) -> None:
        try:
            write = self.store.transitions.fail(
                job.id, job.attempt, error, self.clock(), handoff_until=self._handoff_deadline()
            )
            job = await self.store.apply(write)
        except InvalidTransition:
            logger.warning("failure not recorded: the job moved on")
            await self._moved_on(record, job.id)
            return
        await self._to_dlq(record, job)

    async def _moved_on(self, record: SQSRecord, job_id: str) -> None:
        """Our attempt's outcome was refused: the job is another attempt's, or finished.
        The record is acknowledged, unless the job failed and its DLQ message is not known
        to be sent: the failing worker may have died before its send, and this record may
        be the job's last message, without which nothing would ever finish the hand-off
        (the sweeper does not look at failed jobs). Then it goes the way of any delivery
        of a failed job."""
        job = await self.store.find(job_id)
        if job is not None and job.status == Status.FAILED and not job.dead_lettered:
            await self._failed_again(record, job)

    async def _to_dlq(self, record: SQSRecord, job: Job) -> None:
        """The job is failed and this worker holds its hand-off token: send its one DLQ
        message (carrying the token), then record that it was sent."""
        logger.error("job failed", extra={"error": job.error})
        metrics.job_failed()
        await self.queue.dead_letter(
            record.body,
            job.error or "failed",
            {
                "taskq-job-id": job.id,
                "taskq-task": job.task,
                "taskq-attempts": str(job.attempt),
                "taskq-handoff": job.handoff or "",
            },
        )
        if job.handoff is None:  # failed before hand-off tokens existed: nothing to mark
            return
        try:
            await self.store.apply(self.store.transitions.mark_dead_lettered(job.id, job.handoff))
        except InvalidTransition:
            # Redriven meanwhile, or the token was taken over: our copy is the stale one.
            logger.warning("DLQ hand-off superseded; this DLQ copy is stale")

    async def _failed_again(self, record: SQSRecord, job: Job) -> None:
        """A delivery of a failed job: its DLQ message is sent (acknowledge), being sent
        (look again later), or was never sent by a sender that died (send it now)."""
        if job.dead_lettered:
            logger.info("duplicate delivery of a dead-lettered job acknowledged")
            return
        held_for = (job.handoff_until or 0.0) - self.clock()
        if job.handoff is not None and held_for > 0:
            await self._look_again(record, held_for + 1, "a DLQ hand-off in progress")
        try:
            write = self.store.transitions.take_handoff(
                job.id, job.handoff, handoff_until=self._handoff_deadline()
            )
            job = await self.store.apply(write)
        except InvalidTransition:
            raise RetryLater("another delivery took the DLQ hand-off") from None
        await self._to_dlq(record, job)

    async def _not_claimed(self, record: SQSRecord, message: QueueMessage) -> None:
        """The claim's condition failed: decide from the job's state what the record means."""
        job = await self.store.find(message.job_id)
        now = self.clock()
        if job is None:
            await self.queue.dead_letter(record.body, f"job {message.job_id} not found")
        elif job.task != message.task:
            reason = (
                f"message names task {message.task!r} but job {job.id} is {job.task!r}: "
                "forged, corrupt or from another deployment; the job is left untouched"
            )
            logger.error("dead-lettering a message that does not match its job")
            await self.queue.dead_letter(record.body, reason, {"taskq-mismatch": "task"})
        elif job.status in (Status.COMPLETED, Status.CANCELLED):
            logger.info("duplicate delivery acknowledged", extra={"status": job.status})
        elif job.status == Status.FAILED:
            await self._failed_again(record, job)
        elif job.status == Status.RUNNING and (job.lease_until or 0) >= now:
            await self._look_again(record, (job.lease_until or now) - now + 1, "a live lease")
        elif job.status == Status.RUNNING and job.attempt >= job.max_attempts:
            try:
                write = self.store.transitions.fail_abandoned(
                    job.id, job.attempt, now, handoff_until=self._handoff_deadline()
                )
                job = await self.store.apply(write)
            except InvalidTransition:
                raise RetryLater("job changed while failing it") from None
            await self._to_dlq(record, job)
        elif job.status == Status.RETRYING and (job.run_after or 0) > now + 1:
            await self._look_again(record, (job.run_after or now) - now + 1, "a retry not due")
        elif job.status == Status.SCHEDULED and (job.run_after or 0) > now:
            # Woken early (a duplicate, a sweeper's re-send): back when it is due.
            due_in = math.ceil((job.run_after or now) - now)
            await self._look_again(record, due_in, "a scheduled job not due")
        else:
            # pending/retrying with no attempts left, or a race we lost: look again soon.
            await self._look_again(record, 5, f"job is {job.status}")

    async def _look_again(self, record: SQSRecord, after_s: float, why: str) -> None:
        await self.queue.delay(record.receipt_handle, int(after_s), record.event_source_arn)
        raise RetryLater(f"{why}; will look again")

    def _handoff_deadline(self) -> float:
        """Until when this worker holds a DLQ hand-off: its invocation's deadline."""
        if self._handoff_until is not None:
            return self._handoff_until
        return self.clock() + HANDOFF_HOLD_S

    def _task(self, name: str) -> Task | None:
        try:
            return self.registry.get(name)
        except TaskqError:
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
