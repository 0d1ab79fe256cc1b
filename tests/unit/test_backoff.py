from __future__ import annotations

import pytest

from taskq.backoff import (
    SQS_MAX_VISIBILITY_S,
    backoff_ceiling,
    expires_at,
    is_expired,
    lease_until,
    retry_delay,
)


def test_ceiling_doubles_per_attempt_until_the_cap() -> None:
    assert [backoff_ceiling(n, 2, 60) for n in range(1, 7)] == [2, 4, 8, 16, 32, 60]


def test_ceiling_never_exceeds_what_sqs_allows() -> None:
    assert backoff_ceiling(1000, 10, 10**9) == SQS_MAX_VISIBILITY_S


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError):
        backoff_ceiling(0, 1, 10)


@pytest.mark.parametrize("attempt", [1, 2, 5, 9])
def test_full_jitter_spans_zero_to_the_ceiling(attempt: int) -> None:
    ceiling = backoff_ceiling(attempt, 2, 300)
    assert retry_delay(attempt, 2, 300, rand=lambda: 0.0) == 1  # never zero: no hot loop
    assert retry_delay(attempt, 2, 300, rand=lambda: 0.999999) == round(0.999999 * ceiling)


def test_random_delays_stay_within_bounds() -> None:
    delays = [retry_delay(4, 2, 300) for _ in range(500)]
    assert min(delays) >= 1 and max(delays) <= 16
    assert len(set(delays)) > 5  # jitter actually spreads retries


def test_lease_covers_the_timeout_plus_grace() -> None:
    assert lease_until(100.0, 20) > 120.0


def test_ttl_and_expiry() -> None:
    ttl = expires_at(1000.0, retention_days=2)
    assert ttl == 1000 + 2 * 86_400
    assert not is_expired(None, 10**12)
    assert not is_expired(ttl, ttl - 1)
    assert is_expired(ttl, ttl)


def test_visibility_timeout_is_whole_seconds_within_sqs_bounds() -> None:
    from taskq.backoff import SQS_MAX_VISIBILITY_S, visibility_timeout

    assert visibility_timeout(-3) == 0
    assert visibility_timeout(7.9) == 7
    assert visibility_timeout(10**9) == SQS_MAX_VISIBILITY_S
