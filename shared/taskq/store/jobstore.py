"""The job store over a sync DynamoDB client: the reads, plus every transition sent as
defined in `transitions` (the API, the CLI, the sweeper and the sync worker use it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from taskq.aws import ConditionFailed
from taskq.models import Job
from taskq.store.batches import until_processed
from taskq.store.codec import NewJob, new_item, to_job
from taskq.store.reads import JobReader, get_request
from taskq.store.transitions import HANDOFF_HOLD_S, Transitions, Write

BATCH_WRITE_MAX = 25  # BatchWriteItem's limit per call


class JobStore(JobReader):
    def __init__(
        self,
        table_name: str,
        dynamodb: Any,
        *,
        retention_days: int = 14,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(table_name, dynamodb, clock=clock)
        self.retention_days = retention_days
        self.transitions = Transitions(table_name, retention_days)

    def create(self, new: NewJob) -> tuple[Job, bool]:
        """Store a new pending job. Returns (job, created); created is False when the id exists.

        An existing, unexpired job with this id is returned untouched (the caller
        decides whether that is an idempotent replay or a conflict).
        """
        put = self.transitions.create(new, self.clock())
        try:
            self._send("put_item", put.request)
        except ConditionFailed as failed:
            existing = failed.item
            if not existing:  # DynamoDB returned no item with the refusal: read it
                existing = self._send("get_item", get_request(self.table, new.job_id)).get("Item")
            if existing is None:  # deleted between the two calls: try once more
                return self.create(new)
            return put.refused(existing)
        return put.accepted()

    def create_many(self, news: Sequence[NewJob]) -> list[Job]:
        """Store many new pending jobs with BatchWriteItem (25 a call).

        Only for random ids (uuid4: 122 random bits), which cannot already exist:
        BatchWriteItem takes no condition, so jobs with idempotency keys go through
        create() one by one instead.
        """
        if any(new.idempotency_key for new in news):
            raise ValueError("create_many is for jobs without an idempotency key")
        now = self.clock()
        items = [new_item(new, now) for new in news]
        for start in range(0, len(items), BATCH_WRITE_MAX):
            puts = [
                {"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_MAX]
            ]
            until_processed(
                lambda request: self._send("batch_write_item", {"RequestItems": request}),
                {self.table: puts},
                lambda response: response.get("UnprocessedItems") or {},
            )
        return [to_job(item) for item in items]

    # --- transitions (see transitions.py for each one's condition) -------------------

    def claim(self, job_id: str, lease_until: float, *, task: str | None = None) -> Job:
        return self.apply(self.transitions.claim(job_id, lease_until, self.clock(), task=task))

    def complete(self, job_id: str, attempt: int, result_json: str) -> Job:
        return self.apply(self.transitions.complete(job_id, attempt, result_json, self.clock()))

    def retry(self, job_id: str, attempt: int, error: str, delay_s: int) -> Job:
        return self.apply(self.transitions.retry(job_id, attempt, error, delay_s, self.clock()))

    def fail(self, job_id: str, attempt: int, error: str) -> Job:
        now = self.clock()
        write = self.transitions.fail(
            job_id, attempt, error, now, handoff_until=now + HANDOFF_HOLD_S
        )
        return self.apply(write)

    def fail_abandoned(self, job_id: str, attempt: int) -> Job:
        now = self.clock()
        write = self.transitions.fail_abandoned(
            job_id, attempt, now, handoff_until=now + HANDOFF_HOLD_S
        )
        return self.apply(write)

    def cancel(self, job_id: str, tenant: str | None = None, *, actor: str | None = None) -> Job:
        return self.apply(self.transitions.cancel(job_id, self.clock(), tenant, actor=actor))

    def redrive(
        self,
        job_id: str,
        *,
        reset_attempts: bool = True,
        actor: str = "operator",
        tenant: str | None = None,
    ) -> Job:
        """failed -> pending: with a fresh attempt budget, or keeping the count."""
        seen = None if reset_attempts else self.get(job_id, tenant)
        write = self.transitions.redrive(
            job_id, self.clock(), actor=actor, seen=seen, tenant=tenant
        )
        return self.apply(write)

    def record_event(self, job_id: str, kind: str, detail: str) -> Job:
        """An audit note (e.g. "its DLQ message was purged"); the status stays."""
        return self.apply(self.transitions.record_event(job_id, kind, detail, self.clock()))

    def promote(self, job_id: str) -> Job:
        """Take a delayed job out of the due index (once, even with two clocks)."""
        return self.apply(self.transitions.promote(job_id))

    def mark_requeued(self, job: Job, reason: str) -> Job:
        """The sweeper re-sent the job's message (once, even with two sweepers)."""
        return self.apply(self.transitions.mark_requeued(job, reason, self.clock()))

    def apply(self, write: Write) -> Job:
        """Send one transition; its refusal raises JobNotFound or InvalidTransition."""
        try:
            response = self._send("update_item", write.request)
        except ConditionFailed as failed:
            return write.refused(failed.item, self.clock())
        return write.accepted(response)
