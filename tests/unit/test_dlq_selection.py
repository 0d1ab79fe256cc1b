"""The DLQ's pure parts (taskq.dlq): which entries a selector takes, and the token bucket
that paces a redrive. The operations against SQS and DynamoDB are in test_dlq.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from taskq.dlq import DeadEntry, Kind, Selector, TokenBucket
from taskq.models import Event, Job, Status
from tests.unit.conftest import FakeClock


def entry(job: Job | None = None, **kwargs: Any) -> DeadEntry:
    fields: dict[str, Any] = {
        "message_id": "m-1",
        "receipt_handle": "r",
        "body": "{}",
        "attributes": {},
        "sent_at": 1_000.0,
        "job_id": job.id if job else None,
        "task": job.task if job else None,
        "job": job,
    }
    return DeadEntry(**(fields | kwargs))


def job(status: Status = Status.FAILED, error: str | None = "Boom", **kwargs: Any) -> Job:
    at = datetime.fromtimestamp(900, UTC)
    fields: dict[str, Any] = {
        "id": "a" * 32,
        "task": "echo",
        "payload": {},
        "status": status,
        "attempt": 3,
        "max_attempts": 3,
        "created_at": at,
        "updated_at": at,
        "error": error,
        "events": (Event(kind="failed", attempt=3, at=at, error=error),),
    }
    return Job(**(fields | kwargs))


# --- selection (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (Selector(), True),
        (Selector(ids=frozenset({"a" * 32})), True),
        (Selector(ids=frozenset({"m-1"})), True),
        (Selector(ids=frozenset({"b" * 32})), False),
        (Selector(task="echo"), True),
        (Selector(task="fail"), False),
        (Selector(error_match=re.compile("^Bo+m")), True),
        (Selector(error_match=re.compile("planned")), False),
        (Selector(error_match=re.compile("attempts exhausted")), True),  # the reason counts too
        (Selector(older_than_s=100), True),  # failed at 900, now is 1000
        (Selector(older_than_s=101), False),
        (Selector(newer_than_s=100), True),
        (Selector(newer_than_s=99), False),
        (Selector(task="echo", older_than_s=50, newer_than_s=200), True),
        (Selector(task="echo", error_match=re.compile("nope")), False),
    ],
)
def test_selector_matches_every_given_criterion(selector: Selector, expected: bool) -> None:
    e = entry(job(), attributes={"taskq-reason": "x (attempts exhausted)"})
    assert selector.matches(e, now=1_000.0) is expected


def test_selector_needs_a_criterion_or_all() -> None:
    assert not Selector().has_criteria
    assert not Selector(everything=True).has_criteria
    assert Selector(task="echo").has_criteria
    assert Selector(older_than_s=0).has_criteria


def test_an_entry_without_a_job_uses_the_message() -> None:
    orphan = entry(
        None,
        job_id="c" * 32,
        task="fail",
        attributes={"taskq-reason": "gone", "taskq-attempts": "2"},
        orphan_reason="job not found",
    )
    assert orphan.kind is Kind.ORPHAN
    assert (orphan.error, orphan.attempts, orphan.failed_at) == ("gone", 2, 1_000.0)
    assert orphan.to_dict()["orphan"] is True
    assert entry(job()).failed_at == 900.0  # the job's own failure time wins
    assert entry(job(Status.COMPLETED)).kind is Kind.STALE
    assert entry(job(Status.CANCELLED)).kind is Kind.STALE
    assert entry(job(Status.RETRYING)).kind is Kind.LIVE


# --- the token bucket ------------------------------------------------------------------


def test_token_bucket_sleeps_only_when_empty() -> None:
    clock = FakeClock(100.0)
    bucket = TokenBucket(2.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    assert clock.slept == [0.5, 0.5, 0.5, 0.5]  # the first is free, then 2 a second


def test_token_bucket_is_bounded_after_a_pause() -> None:
    clock = FakeClock(100.0)
    bucket = TokenBucket(1.0, burst=2, clock=clock, sleep=clock.sleep)
    clock.now += 3_600  # an hour idle banks at most `burst` tokens
    for _ in range(4):
        bucket.acquire()
    assert clock.slept == [1.0, 1.0]


def test_token_bucket_does_not_sleep_when_calls_are_slow_anyway() -> None:
    clock = FakeClock(100.0)
    bucket = TokenBucket(10.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire()
        clock.now += 0.5  # each send takes longer than the rate asks
    assert clock.slept == []


def test_token_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)
