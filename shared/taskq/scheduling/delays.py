"""Delayed jobs: when a job's message is sent, and how jobs delayed past SQS's reach wake.

A job asked to run later is stored `scheduled` with `run_after` = its run_at, and the
claim refuses it until then, whatever wakes it. Two ways to wake it:

- up to `direct_max_s` ahead (at most SQS's 900 s): its message is sent at submit with
  DelaySeconds, so SQS itself delivers it on time (to the second);
- further ahead: no message yet. The sparse `by_wake` index holds every scheduled job by
  due time, in a partition per waker; the clock (every minute) promotes the ones it wakes
  that are due within its lookahead: moves each to the message partition (a conditional
  write: two clocks promote a job once) and sends its message with the remaining
  DelaySeconds. The wake-up is as precise as a short delay's.

A message lost on the way (a crash between the write and the send) leaves the job
scheduled past its time in the message partition: the sweeper re-sends it once overdue.
The claim and the cancel take a job out of the index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from taskq.errors import BackendError, InvalidTransition, JobNotFound
from taskq.log import logger
from taskq.models import Job, Status
from taskq.queue import SQS_DELAY_MAX_S, JobQueue, Outgoing
from taskq.store import JobStore

PROMOTE_PAGE = 100  # due jobs read per Query
PROMOTE_PAGES_MAX = 20  # per tick: a backlog beyond 2,000 due at once waits for the next


def wakes_by_clock(run_at: float | None, now: float, direct_max_s: int) -> bool:
    """Whether a job asking to run at `run_at` is beyond an SQS delay: the clock wakes it."""
    return run_at is not None and run_at - now > min(direct_max_s, SQS_DELAY_MAX_S)


def message_delay(job: Job, now: float) -> int | None:
    """DelaySeconds for the job's message now; None: send none (the clock will)."""
    if job.status != Status.SCHEDULED:
        return 0
    if job.wakes_by_clock:
        return None
    # Rounded up: the message never arrives before the job is due.
    return min(SQS_DELAY_MAX_S, max(0, math.ceil((job.run_after or now) - now)))


@dataclass
class PromoteReport:
    promoted: int = 0
    skipped: int = 0  # cancelled meanwhile, or another clock promoted it
    send_failures: int = 0


def promote_due(store: JobStore, queue: JobQueue, now: float, lookahead_s: int) -> PromoteReport:
    """Send the messages of index-delayed jobs due within `lookahead_s` (≤ 900)."""
    report = PromoteReport()
    horizon = now + min(lookahead_s, SQS_DELAY_MAX_S)
    for _ in range(PROMOTE_PAGES_MAX):
        due = store.due(horizon, PROMOTE_PAGE)
        outgoing: list[Outgoing] = []
        for entry in due:
            try:
                # Out of the index first: a crash after it leaves the job for the sweeper.
                store.promote(entry.id)
            except (InvalidTransition, JobNotFound):
                report.skipped += 1
                continue
            delay = min(SQS_DELAY_MAX_S, max(0, math.ceil((entry.run_after or now) - now)))
            outgoing.append(Outgoing(entry.id, entry.task, delay, entry.priority))
        try:
            unsent = queue.send_many(outgoing)
        except BackendError:
            unsent = [entry.job_id for entry in outgoing]
        if unsent:
            logger.error(
                "wake-up send failed; the sweeper re-sends overdue jobs", extra={"jobs": unsent}
            )
        report.send_failures += len(unsent)
        report.promoted += len(outgoing) - len(unsent)
        if len(due) < PROMOTE_PAGE:
            break
    return report
