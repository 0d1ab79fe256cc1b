"""Operator statistics: jobs by status, queue and DLQ depth, the age of the oldest DLQ
message, and jobs submitted, completed and failed per minute (`taskq stats`, the dashboard).

Counts come from the phase index (never a Scan): COUNT Queries for finished jobs, and the
live jobs' items read by key, at most the store's LIVE_COUNT_MAX (past that the live counts
are lower bounds, and `jobs_exact` says so). Depths come from SQS's approximate attributes,
so a number may lag the truth by a few seconds. SQS reports the oldest message's age only
to CloudWatch, so that one is read from the DLQ itself. The per-minute figures come from
the phase index's keys too (each job's creation, and its finish): a job completed in a
minute counts there while it stays completed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from taskq.dlq import DeadLetters
from taskq.models import Priority, Status
from taskq.store.reads import JobReader


@dataclass(frozen=True)
class Stats:
    jobs: dict[str, int]  # status -> unexpired jobs
    jobs_exact: bool  # False: too many live jobs to read them all; their counts are at least
    queue: dict[str, int]  # visible, in_flight (being worked on), delayed (retries waiting)
    queues: dict[str, dict[str, int]]  # the same, per priority's queue ("queue": all of them)
    dlq: dict[str, int]
    oldest_dlq_age_s: float | None  # None: the DLQ looked empty
    oldest_dlq_age_exact: bool  # False when the DLQ was too large to read whole

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(dead: DeadLetters) -> Stats:
    counts, exact = dead.store.count_jobs()
    age, exact = dead.oldest_age()
    queues = _per_queue(dead)
    total = {name: sum(q[name] for q in queues.values()) for name in next(iter(queues.values()))}
    return Stats(
        jobs={str(status): count for status, count in counts.items()},
        jobs_exact=exact,
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
    """Submitted (created), completed and failed (finished so) per minute: one Query
    per phase on the phase index, reading its keys only, never a Scan."""
    now = time.time() if now is None else now
    start = (now // 60 - minutes + 1) * 60
    series = {name: [0] * minutes for name in ("submitted", "completed", "failed")}

    def add(name: str, stamps: list[float]) -> None:
        for stamp in stamps:
            slot = int((stamp - start) // 60)
            if 0 <= slot < minutes:
                series[name][slot] += 1

    found, complete = store.activity(start, max_pages)
    add("submitted", found.created)
    for status in (Status.COMPLETED, Status.FAILED):
        add(str(status), found.finished.get(status, []))
    return Throughput(start=start, complete=complete, **series)
