"""The cap's check itself: which spans an attempt held the task for, read from the job's
events, and that the check names the attempts when it fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from taskq.models import Event, Job, Status
from tests.faults.capacity import CAPPED_TASK, account_capacity, attempt_spans, most_at_once
from tests.faults.timing import ABANDONED, LEASE_S


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(1_000 + seconds, UTC)


def _job(job_id: str, *events: tuple[str, int, float, str | None]) -> Job:
    at = _at(0)
    fields: dict[str, Any] = {
        "id": job_id,
        "task": CAPPED_TASK,
        "payload": {},
        "status": Status.COMPLETED,
        "attempt": max(e[1] for e in events),
        "max_attempts": 3,
        "created_at": at,
        "updated_at": at,
        "events": tuple(
            Event(kind=kind, attempt=attempt, at=_at(t), error=error)
            for kind, attempt, t, error in events
        ),
    }
    return Job(**fields)


def test_an_attempt_found_abandoned_held_only_until_its_lease_lapsed() -> None:
    """fail_abandoned is written later by whoever found the lease lapsed: not an outcome."""
    abandoned = _job(
        "a" * 32,
        ("running", 3, 0.0, None),
        ("failed", 3, 60.0, f"the last attempt's worker stopped ({ABANDONED})"),
    )
    assert attempt_spans([abandoned], LEASE_S) == [(1_000.0, 1_000.0 + LEASE_S)]


def test_an_outcome_ends_the_span_and_a_lost_attempt_holds_until_its_lease() -> None:
    job = _job(
        "b" * 32,
        ("running", 1, 0.0, None),  # killed: no outcome, the next claim came first
        ("running", 2, 5.0, None),
        ("retrying", 2, 6.0, None),
        ("running", 3, 8.0, None),
        ("completed", 3, 70.0, None),  # a late outcome counts as written: it ran that long
    )
    assert attempt_spans([job], LEASE_S) == [
        (1_000.0, 1_005.0),
        (1_005.0, 1_006.0),
        (1_008.0, 1_070.0),
    ]


def test_over_the_cap_is_a_violation_that_names_the_attempts() -> None:
    jobs = {
        str(n) * 32: _job(str(n) * 32, ("running", 1, n * 0.5, None), ("completed", 1, 3.0, None))
        for n in range(1, 5)
    }
    assert most_at_once(attempt_spans(list(jobs.values()), LEASE_S)) == 4
    _, violations = account_capacity(jobs, LEASE_S)
    assert len(violations) == 1
    assert "4 attempts at once, over its cap of 3" in violations[0]
    assert all(f"{job_id} #1" in violations[0] for job_id in jobs)
    del jobs["4" * 32]
    assert account_capacity(jobs, LEASE_S)[1] == []
