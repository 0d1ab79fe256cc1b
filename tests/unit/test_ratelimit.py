from __future__ import annotations

from pathlib import Path

import pytest

from infra.template import Stack
from taskq.ratelimit import TokenBucket
from tests.unit.conftest import FakeClock

ROOT = Path(__file__).resolve().parents[2]


def test_a_burst_then_the_rate() -> None:
    clock = FakeClock(0)
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]
    assert bucket.take() == pytest.approx(0.5)  # the next token comes in 1/rate s
    clock.advance(0.5)
    assert bucket.take() == 0
    clock.advance(100)
    assert [bucket.take() for _ in range(4)][-1] > 0  # refill never exceeds the burst


def test_bad_limits() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)


def test_the_template_sets_the_local_limits() -> None:
    stack = Stack.from_file(ROOT / "template.yaml", parameters={"Stage": "t"})
    rate, burst = stack.api_throttle() or (0, 0)
    assert rate > 0 and burst >= rate  # read from HttpApi.DefaultRouteSettings
