"""Recovery for work SQS will not bring back by itself.

- A job stored but never sent (the API crashed between the write and the send).
- A job whose worker died and whose message is gone (deleted, or expired).
- A retry whose message was lost.
- A delayed job whose wake-up message was lost.

Each is found by a Query on an index (the live phase, read with the items by key; the
wake index for delayed jobs) and re-sent once per sweep window:
the store's mark_requeued is conditional on the version read, so two sweepers at
once send one message, and a job that moved on meanwhile is left alone. A message
sent for a job that is in fact still queued is harmless: the claim runs it once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from taskq.errors import BackendError, InvalidTransition, JobNotFound
from taskq.log import logger
from taskq.models import Status
from taskq.queue import JobQueue
from taskq.store import JobStore

REASONS = {
    Status.PENDING: "pending and never claimed",
    Status.RUNNING: "lease expired",
    Status.RETRYING: "retry overdue",
    Status.SCHEDULED: "scheduled, overdue",
}


@dataclass
class SweepReport:
    requeued: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # moved on between the query and the mark, or another sweeper won
    send_failures: int = 0


def sweep(
    store: JobStore,
    queue: JobQueue,
    *,
    stale_after_s: float,
    limit: int = 200,
    clock: Callable[[], float] = time.time,
) -> SweepReport:
    report = SweepReport()
    before = clock() - stale_after_s
    stalled = store.stalled(before, limit) + store.overdue_scheduled(before, limit)
    for status in REASONS:
        report.requeued[status] = 0
    for job in stalled:
        reason = REASONS[job.status]
        try:
            # Mark first: a crash after it leaves the job stale again for the next sweep.
            store.mark_requeued(job, reason)
        except (InvalidTransition, JobNotFound):
            report.skipped += 1
            continue
        try:
            queue.send(job.id, job.task, priority=job.priority)
        except BackendError:
            logger.exception("re-send failed", extra={"job_id": job.id})
            report.send_failures += 1
            continue
        report.requeued[job.status] += 1
        logger.info("job re-queued", extra={"job_id": job.id, "reason": reason})
    return report
