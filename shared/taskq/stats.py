"""Operator statistics: jobs by status, queue and DLQ depth, the age of the oldest DLQ message.

Counts come from COUNT Queries on the status index (never a Scan) and depths from SQS's
approximate attributes, so a number may lag the truth by a few seconds. SQS reports the
oldest message's age only to CloudWatch, so that one is read from the DLQ itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from taskq.dlq import DeadLetters
from taskq.models import Priority, Status


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
