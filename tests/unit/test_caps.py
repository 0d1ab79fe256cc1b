"""The slot arithmetic of concurrency caps, against moto's in-process DynamoDB."""

from __future__ import annotations

from typing import Any

import pytest

from taskq import aio
from taskq.aio import ThreadedClient
from taskq.caps import WAIT_S, Cap, Caps, live, wait_s
from tests.unit.conftest import FakeClock


@pytest.fixture
def caps(settings: Any, dynamodb: Any, clock: FakeClock) -> Caps:
    return Caps(settings.table_name, ThreadedClient("DynamoDB", dynamodb), clock)


def run(coroutine: Any) -> Any:
    """On the process's loop, as the worker runs (taskq.aio closes it at exit)."""
    return aio.run(coroutine)


def test_live_keeps_holders_whose_lease_runs() -> None:
    assert live({"a": 10.0, "b": 9.0, "c": 11.0}, now=10.0) == {"a": 10.0, "c": 11.0}


def test_the_wait_is_jittered_within_its_bounds() -> None:
    assert wait_s(lambda: 0.0) == WAIT_S[0] and wait_s(lambda: 1.0) == WAIT_S[1]


def test_slots_up_to_the_limit_then_none(caps: Caps, clock: FakeClock) -> None:
    cap = Cap(2)
    lease = 10.0
    first = run(caps.take(cap, "cap:t", "j1", lease))
    second = run(caps.take(cap, "cap:t", "j2", lease))
    assert first and second and first.token != second.token
    assert run(caps.take(cap, "cap:t", "j3", lease)) is None
    run(caps.release(first))
    assert run(caps.take(cap, "cap:t", "j3", lease)) is not None


def test_a_lapsed_holder_gives_its_slot_up_and_cannot_free_it_later(
    caps: Caps, clock: FakeClock
) -> None:
    cap = Cap(1)
    dead = run(caps.take(cap, "cap:t", "j1", 5))
    assert run(caps.take(cap, "cap:t", "j2", 5)) is None
    clock.advance(6)  # j1's worker died: its lease lapsed
    heir = run(caps.take(cap, "cap:t", "j2", 5))
    assert heir is not None
    run(caps.release(dead))  # the dead holder wakes up late: not its slot any more
    assert run(caps.take(cap, "cap:t", "j3", 5)) is None


def test_a_job_holding_a_live_slot_does_not_take_a_second(caps: Caps, clock: FakeClock) -> None:
    cap = Cap(5)
    assert run(caps.take(cap, "cap:t", "j1", 5)) is not None
    assert run(caps.take(cap, "cap:t", "j1", 5)) is None  # a duplicate delivery


def test_a_slot_lease_counts_from_the_write_that_takes_it(caps: Caps, clock: FakeClock) -> None:
    hold = run(caps.take(Cap(1), "cap:t", "j1", 30))
    assert hold is not None and hold.until == clock.now + 30


def test_per_key_caps_are_separate_items() -> None:
    cap = Cap(1, key="customer")
    a = cap.item_id("t", {"customer": "a"})
    assert a != cap.item_id("t", {"customer": "b"})
    assert a == cap.item_id("t", {"customer": "a", "other": 1})
    assert Cap(1).item_id("t", {"customer": "a"}) == "cap:t"
