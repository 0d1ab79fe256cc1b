"""The fault suite's priorities and concurrency caps: what they add to the plan, and the
cap's check.

A share of the jobs goes to the high and low queues (their own mappings, as on Lambda);
a share of the well-behaved ones runs `chaos_capped` (chaos_tasks.py, concurrency=3). On
top of the suite's checks for every job, no more than 3 attempts of `chaos_capped` may
ever hold the worker at once, measured from the attempts' claims and outcomes in the job
records (an attempt that wrote no outcome, killed, held its slot until its lease lapsed).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

from taskq.models import Job, Status
from tests.faults.timing import ABANDONED

CAPPED_TASK = "chaos_capped"
CAP = 3  # chaos_capped's concurrency
CAPPED_SHARE = 0.1  # of the well-behaved jobs
PRIORITIES = (("high", 0.15), ("low", 0.15))


def assign(plans: list[Any], rng: random.Random) -> list[Any]:
    """Priorities for some jobs, the capped task for some well-behaved ones."""
    out = []
    for plan in plans:
        roll = rng.random()
        priority = "high" if roll < PRIORITIES[0][1] else "low" if roll < 0.3 else None
        task = plan.task
        if plan.kind in ("ok", "flaky") and rng.random() < CAPPED_SHARE:
            task = CAPPED_TASK
        out.append(dataclasses.replace(plan, priority=priority, task=task))
    return out


def attempt_spans(jobs: list[Job], lease_s: float) -> list[tuple[float, float]]:
    """Each attempt's (claim, outcome); an attempt without an outcome held until its lease
    lapsed, or until the job's next claim if that came first."""
    return [(start, end) for start, end, _ in _labelled_spans(jobs, lease_s)]


def _labelled_spans(jobs: list[Job], lease_s: float) -> list[tuple[float, float, str]]:
    """attempt_spans, each with "job id #attempt" (for a violation that names them).

    A failure found abandoned (its lease had lapsed: fail_abandoned) is not the attempt's
    outcome: whoever found it wrote it later, so that attempt ended by its lease."""
    spans = []
    for job in jobs:
        start: float | None = None
        label = ""
        for event in job.events:
            at = event.at.timestamp()
            if event.kind == Status.RUNNING:
                if start is not None:
                    spans.append((start, min(at, start + lease_s), label))
                start, label = at, f"{job.id} #{event.attempt}"
            elif start is not None and event.kind in ("completed", "retrying", "failed"):
                abandoned = event.kind == "failed" and ABANDONED in (event.error or "")
                spans.append((start, min(at, start + lease_s) if abandoned else at, label))
                start = None
        if start is not None:
            spans.append((start, start + lease_s, label))
    return spans


def crowded(jobs: list[Job], lease_s: float) -> list[str]:
    """The attempts holding the task at the first instant the most of them did."""
    spans = _labelled_spans(jobs, lease_s)
    most = most_at_once([(s, e) for s, e, _ in spans])
    for start, _, _ in sorted(spans):
        holding = sorted(label for s, e, label in spans if s <= start < e)
        if len(holding) == most:
            return [f"{label} from {start:.2f}" for label in holding]
    return []


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def account_capacity(jobs: dict[str, Job], lease_s: float) -> tuple[list[str], list[str]]:
    """(report lines, violations) for priorities and the cap."""
    capped = [j for j in jobs.values() if j.task == CAPPED_TASK]
    peak = most_at_once(attempt_spans(capped, lease_s))
    violations = [
        f"{CAPPED_TASK}: {peak} attempts at once, over its cap of {CAP}: "
        + "; ".join(crowded(capped, lease_s))
    ] * (peak > CAP)
    if not capped:
        violations.append(f"never exercised: {CAPPED_TASK}")
    by_priority = Counter(str(j.priority) for j in jobs.values())
    done = Counter(
        str(j.priority) for j in jobs.values() if j.status in (Status.COMPLETED, Status.FAILED)
    )
    waited = [j for j in capped if j.status == Status.COMPLETED and j.attempt == 1]
    lines = [
        "priorities    "
        + ", ".join(
            f"{p} {by_priority[p]} ({done[p]} finished)" for p in ("high", "default", "low")
        ),
        f"capped        {len(capped)} jobs of {CAPPED_TASK} (cap {CAP}); at most {peak} at once; "
        f"{len(waited)} completed on their first attempt",
    ]
    return lines, violations
