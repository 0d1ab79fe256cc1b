"""Operator statistics: jobs by status, queue and DLQ depth, the age of the oldest DLQ
message, and jobs submitted, completed and failed per minute (`taskq stats`, the dashboard).

Counts come from COUNT Queries on the status index (never a Scan) and depths from SQS's
approximate attributes, so a number may lag the truth by a few seconds. SQS reports the
oldest message's age only to CloudWatch, so that one is read from the DLQ itself. The
per-minute figures come from the status index too (each job's creation and last change):
a job completed in a minute counts there while it stays completed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from taskq.dlq import DeadLetters
from taskq.models import Priority, Status
from taskq.store.reads import JobReader
from taskq.text import parse_stored_time


@dataclass(frozen=True)
class Stats:
    jobs: dict[str, int]  # status -> unexpired jobs
    queue: dict[str, int]  # visible, in_flight (being worked on), delayed (retries waiting)
    queues: dict[str, dict[str, int]]  # the same, per priority's queue ("queue": all of them)
    dlq: dict[str, int]
    oldest_dlq_age_s: float | None  # None: the DLQ looked empty
    oldest_dlq_age_exact: bool  # False when the DLQ was too large to read whole

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(dead: DeadLetters) -> Stats:
    counts = {str(status): dead.store.count_by_status(status) for status in Status}
    age, exact = dead.oldest_age()
    queues = _per_queue(dead)
    total = {name: sum(q[name] for q in queues.values()) for name in next(iter(queues.values()))}
    return Stats(
        jobs=counts,
        queue=total,
        queues=queues,
        dlq=dead.queue.depth(dead=True),
        oldest_dlq_age_s=None if age is None else round(age, 1),
        oldest_dlq_age_exact=exact,
    )


def _per_queue(dead: DeadLetters) -> dict[str, dict[str, int]]:
    """Each priority's queue once (priorities without a queue of their own share the
    default's, and are not counted twice)."""
    seen: dict[str, dict[str, int]] = {}
    urls: set[str] = set()
    for priority in Priority:
        url = dead.queue.urls[priority]
        if url not in urls:
            urls.add(url)
            seen[str(priority)] = dead.queue.depth(priority=priority)
    return seen


@dataclass(frozen=True)
class Throughput:
    """Jobs per minute over the last `len(submitted)` minutes, oldest minute first."""

    start: float  # epoch seconds at which the first minute begins
    submitted: list[int]
    completed: list[int]
    failed: list[int]
    complete: bool  # False: a status held more history than one read may take

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def throughput(
    store: JobReader, minutes: int = 60, now: float | None = None, max_pages: int = 10
) -> Throughput:
    """Submitted (created), completed and failed (last changed into that status) per
    minute: one filtered Query per status on the status index, never a Scan."""
    now = time.time() if now is None else now
    start = (now // 60 - minutes + 1) * 60
    series = {name: [0] * minutes for name in ("submitted", "completed", "failed")}
    complete = True

    def add(name: str, stamp: str) -> None:
        slot = int((parse_stored_time(stamp).timestamp() - start) // 60)
        if 0 <= slot < minutes:
            series[name][slot] += 1

    for status in Status:
        times, whole = store.touched_since(status, start, max_pages)
        complete = complete and whole
        for created, updated in times:
            add("submitted", created)
            if status in (Status.COMPLETED, Status.FAILED):
                add(str(status), updated)
    return Throughput(start=start, complete=complete, **series)
