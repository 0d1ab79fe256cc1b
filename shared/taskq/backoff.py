"""Pure arithmetic for retries, leases and expiry: no I/O, easy to test."""

from __future__ import annotations

import random
from collections.abc import Callable

SQS_MAX_VISIBILITY_S = 43_200  # ChangeMessageVisibility's ceiling: 12 hours
LEASE_GRACE_S = 5.0  # slack for the claim/complete round trips around a task


def backoff_ceiling(attempt: int, base_s: float, cap_s: float) -> float:
    """The largest delay after failed attempt `attempt` (1-based): base * 2**(attempt-1), capped."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    cap = min(cap_s, SQS_MAX_VISIBILITY_S)
    # Cap the exponent too, so a huge attempt number cannot overflow a float.
    return min(cap, base_s * 2.0 ** min(attempt - 1, 60))


def retry_delay(
    attempt: int,
    base_s: float,
    cap_s: float,
    rand: Callable[[], float] = random.random,
) -> int:
    """Full-jitter backoff (AWS Architecture Blog): uniform in [0, ceiling], whole seconds.

    Whole seconds because SQS visibility timeouts are integers; at least 1 so a
    retry never spins straight back in the same poll.
    """
    ceiling = backoff_ceiling(attempt, base_s, cap_s)
    return max(1, min(SQS_MAX_VISIBILITY_S, round(rand() * ceiling)))


def visibility_timeout(seconds: float) -> int:
    """A delay as SQS takes it: whole seconds, 0 to its 12-hour ceiling."""
    return max(0, min(int(seconds), SQS_MAX_VISIBILITY_S))


def lease_until(now: float, task_timeout_s: float) -> float:
    """When a claim lapses: after the task's own timeout plus a little grace."""
    return now + task_timeout_s + LEASE_GRACE_S


def expires_at(now: float, retention_days: int) -> int:
    """The TTL attribute for a finished job (epoch seconds, as DynamoDB TTL wants)."""
    return int(now + retention_days * 86_400)


def is_expired(expires: float | None, now: float) -> bool:
    """DynamoDB deletes expired items lazily (up to days later): reads must check."""
    return expires is not None and expires <= now
