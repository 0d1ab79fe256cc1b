"""Periodic schedules: one job per fire time, the catch-up rule, pause, overlap, racing
clocks; and the declaration's checks at load. moto's in-process mock, a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from taskq.errors import ConfigError, UnknownSchedule
from taskq.jobs import JobService
from taskq.models import Status
from taskq.queue import JobQueue
from taskq.scheduling.declared import Schedule
from taskq.scheduling.periodic import ScheduleService, fire_key
from taskq.scheduling.state import ScheduleStates
from taskq.store import JobStore
from taskq.tasks import JobContext, TaskRegistry
from tests.unit.conftest import FakeClock

MINUTE = 60.0


class Beat(BaseModel):
    source: str = "x"


def _registry(**options: Any) -> TaskRegistry:
    registry = TaskRegistry()

    @registry.task(schedule="rate(1 minute)", schedule_payload={"source": "p"}, **options)
    def beat(payload: Beat, ctx: JobContext) -> None:
        return None

    return registry


def _service(store: JobStore, queue: JobQueue, clock: FakeClock, **options: Any) -> ScheduleService:
    registry = _registry(**options)
    jobs = JobService(store, queue, registry)
    return ScheduleService(
        jobs, ScheduleStates(store.table, store.db, clock=clock), registry, clock=clock
    )


@pytest.fixture
def on_the_minute(clock: FakeClock) -> FakeClock:
    clock.now = (clock.now // MINUTE) * MINUTE + 10  # 10 s past a minute
    return clock


def _beats(store: JobStore) -> list[Any]:
    jobs, _ = store.list_jobs(task="beat", limit=100)
    return sorted(jobs, key=lambda j: j.run_at or 0)


def test_each_fire_time_makes_one_job_however_many_ticks(
    store: JobStore, queue: JobQueue, on_the_minute: FakeClock
) -> None:
    service = _service(store, queue, on_the_minute)
    service.fire_due(lookahead_s=180)  # first sight: starts now, fires ahead are created
    first = _beats(store)
    assert [j.run_at for j in first] == [on_the_minute.now - 10 + MINUTE * k for k in (1, 2, 3)]
    assert all(j.status == Status.SCHEDULED and j.schedule == "beat" for j in first)
    for _ in range(3):  # the same tick again, and a second clock's
        report = service.fire_due(lookahead_s=180)
        assert report.fired == 0
    other = _service(store, queue, on_the_minute)
    other.fire_due(lookahead_s=240)  # a clock that looks further creates only the new one
    assert len(_beats(store)) == 4
    assert first[0].id == store.find(first[0].id).id  # type: ignore[union-attr]


def test_a_racing_clock_that_lost_the_watermark_adds_nothing(
    store: JobStore, queue: JobQueue, on_the_minute: FakeClock
) -> None:
    a = _service(store, queue, on_the_minute)
    b = _service(store, queue, on_the_minute)
    seen = b.states.read(["beat"])["beat"]
    a.fire_due(lookahead_s=180)
    assert not b.states.advance(seen, on_the_minute.now + 180, None)  # a moved it first
    for fire in (j.run_at for j in _beats(store)):
        assert fire is not None
        job = b.submit_fire(b.registry.schedule("beat"), fire)
        assert job.replayed
    assert len(_beats(store)) == 3


def test_after_downtime_only_the_latest_missed_fire_runs(
    store: JobStore, queue: JobQueue, on_the_minute: FakeClock
) -> None:
    service = _service(store, queue, on_the_minute)
    service.fire_due(lookahead_s=0)
    on_the_minute.advance(10 * MINUTE)  # the clock was down for ten fires
    report = service.fire_due(lookahead_s=0)
    assert report.fired == 1 and report.missed == 9
    (job,) = _beats(store)
    assert job.run_at == on_the_minute.now - 10  # the latest, run now
    assert job.status == Status.PENDING


def test_missed_fires_older_than_the_window_are_skipped(
    store: JobStore, queue: JobQueue, on_the_minute: FakeClock
) -> None:
    registry = TaskRegistry()

    @registry.task(schedule=Schedule("cron(0 3 * * ? *)", catch_up_s=600))
    def nightly(payload: Beat, ctx: JobContext) -> None:
        return None

    service = ScheduleService(
        JobService(store, queue, registry),
        ScheduleStates(store.table, store.db, clock=on_the_minute), registry, clock=on_the_minute,
    )  # fmt: skip
    service.fire_due(lookahead_s=0)
    on_the_minute.advance(2 * 86400)  # down two days: both 03:00 fires are hours old
    report = service.fire_due(lookahead_s=0)
    assert report.fired == 0
    assert store.list_jobs(task="nightly", limit=10)[0] == []


def test_pause_cancels_coming_fires_and_resume_does_not_replay(
    store: JobStore, queue: JobQueue, on_the_minute: FakeClock
) -> None:
    service = _service(store, queue, on_the_minute)
    service.fire_due(lookahead_s=180)
    cancelled = service.pause("beat", "ops")
    assert len(cancelled) == 3
    assert all(j.status == Status.CANCELLED for j in _beats(store))
    on_the_minute.advance(5 * MINUTE)
    assert service.fire_due(lookahead_s=180).paused == 1
    assert len(_beats(store)) == 3
    service.resume("beat", "ops")
    assert service.fire_due(lookahead_s=60).fired == 1  # only what is ahead of the resume
    (view,) = service.views()
    assert not view.state.paused and view.state.changed_by == "ops"
    assert len(view.next_fires) == 3


def test_trigger_runs_once_now_even_when_paused(
    store: JobStore, queue: JobQueue, on_the_minute: FakeClock
) -> None:
    service = _service(store, queue, on_the_minute)
    service.pause("beat", "ops")
    job = service.trigger("beat", "ops")
    assert (
        job.status == Status.PENDING and job.schedule == "beat" and job.payload == {"source": "p"}
    )
    with pytest.raises(UnknownSchedule):
        service.trigger("nope", "ops")


def test_no_overlap_skips_fires_while_the_previous_run_is_unfinished(
    store: JobStore, queue: JobQueue, on_the_minute: FakeClock
) -> None:
    service = _service(store, queue, on_the_minute, schedule_overlap=False)
    service.fire_due(lookahead_s=180)
    assert _beats(store) == []  # no-overlap fires are created when due, not ahead
    on_the_minute.advance(MINUTE)
    assert service.fire_due(lookahead_s=180).fired == 1
    (first,) = _beats(store)
    on_the_minute.advance(MINUTE)  # the first is still pending: this fire is skipped
    report = service.fire_due(lookahead_s=180)
    assert (report.fired, report.overlapping) == (0, 1)
    store.cancel(first.id)  # finished (cancelled counts as finished)
    on_the_minute.advance(MINUTE)
    assert service.fire_due(lookahead_s=180).fired == 1


def test_a_fire_key_is_one_idempotency_key() -> None:
    (schedule,) = _registry().schedules()
    assert fire_key(schedule, 1_800_000_000) == "schedule:beat:20270115T080000Z"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedule": "rate(1 minutes)"}, "singular"),
        ({"schedule": "cron(0 3 * * * *)"}, "?"),
        ({"schedule": "rate(1 hour)", "schedule_tz": "Mars/Base"}, "unknown time zone"),
        ({"schedule": "rate(1 hour)", "schedule_payload": {"source": 5}}, "refused by the task"),
        ({"schedule": ["rate(1 hour)", "rate(2 hours)"]}, "give each a name"),
        (
            {"schedule": [Schedule("rate(1 hour)", name="a"), Schedule("rate(2 hours)", name="a")]},
            "named alike",
        ),
        ({"schedule": Schedule("rate(1 hour)", name="no spaces")}, "schedule name"),
        ({"schedule": Schedule("rate(1 hour)", catch_up_s=-1)}, "catch_up_s"),
    ],
)
def test_a_bad_schedule_fails_at_load_with_one_line(options: dict[str, Any], message: str) -> None:
    registry = TaskRegistry()
    with pytest.raises(ConfigError, match="task 'beat'") as raised:

        @registry.task(**options)
        def beat(payload: Beat, ctx: JobContext) -> None:
            return None

    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_two_tasks_cannot_share_a_schedule_name() -> None:
    registry = TaskRegistry()

    @registry.task(schedule=Schedule("rate(1 hour)", name="hourly"))
    def one(payload: Beat, ctx: JobContext) -> None:
        return None

    with pytest.raises(ConfigError, match="also a schedule of task 'one'"):

        @registry.task(schedule=Schedule("rate(1 hour)", name="hourly"))
        def two(payload: Beat, ctx: JobContext) -> None:
            return None
