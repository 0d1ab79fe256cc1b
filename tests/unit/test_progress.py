"""An attempt's reports (taskq.progress) against moto's in-process DynamoDB: what a task's
calls record, what the ticker writes and how often, what a stale attempt may not write,
and the per-attempt limits of log lines."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import pytest

from taskq import progress
from taskq.aio import ThreadedClient
from taskq.config import Settings
from taskq.progress import AttemptReport, checked_progress
from taskq.store import JobStore, NewJob
from taskq.store.aio import AsyncJobStore
from taskq.store.lines import LINES_PER_RUN, AsyncLineWriter, LogLines
from tests.unit.conftest import FakeClock

JOB = "a" * 32


class CountingClient(ThreadedClient):
    """The store's client, counting the calls the reports make."""

    def __init__(self, client: Any) -> None:
        super().__init__("DynamoDB", client)
        self.calls: list[str] = []

    async def call(self, operation: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append(operation)
        return await super().call(operation, kwargs)


@pytest.fixture
def running(store: JobStore) -> JobStore:
    store.create(NewJob(JOB, "echo", "{}", 3))
    store.claim(JOB, store.clock() + 60)
    return store


def report_for(
    store: JobStore, settings: Settings, dynamodb: Any, *, attempt: int = 1, **kw: Any
) -> tuple[AttemptReport, CountingClient]:
    client = CountingClient(dynamodb)
    aio_store = AsyncJobStore(store.table, client, clock=store.clock)
    assert settings.logs_table is not None
    lines = AsyncLineWriter(settings.logs_table, client, 14, clock=store.clock)
    report = AttemptReport(
        job_id=JOB, attempt=attempt, run=attempt, store=aio_store, lines=lines,
        clock=store.clock, **kw,
    )  # fmt: skip
    return report, client


@pytest.mark.parametrize(
    "bad", [-0.1, 1.5, math.nan, math.inf, True, "half", None, [0.5], {"x": {1, 2}}]
)
def test_progress_must_be_a_fraction_or_a_json_object(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        checked_progress(bad)


def test_a_large_progress_object_is_refused_and_a_long_message_cut() -> None:
    with pytest.raises(ValueError, match="1024 bytes"):
        checked_progress({"x": "y" * 2000})
    assert checked_progress(0, "m" * 500)[1] == "m" * progress.PROGRESS_MESSAGE_MAX_CHARS
    assert checked_progress(1)[0] == 1 and checked_progress({"rows": 3})[0] == {"rows": 3}


def test_many_reports_in_a_second_are_one_write_of_the_latest(
    running: JobStore, settings: Settings, dynamodb: Any
) -> None:
    report, client = report_for(running, settings, dynamodb)
    for n in range(1, 101):
        report.progress(checked_progress(n / 100, f"row {n}"))
    asyncio.run(report.flush())
    asyncio.run(report.flush())  # nothing new: nothing written
    assert client.calls == ["update_item"]
    stored = running.get(JOB).progress
    assert stored is not None and stored.fraction == 1.0 and stored.message == "row 100"


def test_a_stale_attempt_cannot_overwrite_the_newer_attempts_progress(
    running: JobStore, settings: Settings, dynamodb: Any, clock: FakeClock
) -> None:
    clock.advance(120)  # attempt 1's lease lapsed; attempt 2 claims the job
    running.claim(JOB, clock() + 60)
    newer, _ = report_for(running, settings, dynamodb, attempt=2)
    newer.progress(checked_progress(0.2))
    asyncio.run(newer.flush())
    stale, client = report_for(running, settings, dynamodb, attempt=1)
    stale.progress(checked_progress(0.9))
    asyncio.run(stale.flush())
    stale.progress(checked_progress(1.0))
    asyncio.run(stale.flush())  # refused once: it stops trying
    assert client.calls == ["update_item"]
    stored = running.get(JOB).progress
    assert stored is not None and (stored.fraction, stored.attempt) == (0.2, 2)


def test_a_heartbeat_extends_the_lease_and_the_message_stays_hidden(
    running: JobStore, settings: Settings, dynamodb: Any, clock: FakeClock
) -> None:
    hidden: list[int] = []

    async def extend(seconds: int) -> None:
        hidden.append(seconds)

    report, _ = report_for(running, settings, dynamodb, heartbeat_s=10, extend_visibility=extend)
    before = running.get(JOB).lease_until
    clock.advance(30)
    report.heartbeat()
    asyncio.run(report.flush())
    after = running.get(JOB).lease_until
    assert before is not None and after is not None and after == clock() + 10 + 5
    assert hidden == [15 + 20]  # past the lease by two heartbeats
    report.heartbeat()
    asyncio.run(report.flush())
    assert hidden == [35]  # still hidden long enough: no second SQS call


def test_lines_from_many_threads_keep_the_limit_and_count_the_rest(
    running: JobStore, settings: Settings, dynamodb: Any
) -> None:
    report, _ = report_for(running, settings, dynamodb)

    def chatter(n: int) -> None:
        for i in range(30):
            report.log(f"thread {n} line {i}")

    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    asyncio.run(report.flush(final=True))
    report.log("after the attempt ended")  # a timed-out thread: ignored
    asyncio.run(report.flush(final=True))
    assert settings.logs_table is not None
    lines, _ = LogLines(settings.logs_table, dynamodb).page(JOB, limit=500)
    assert len(lines) == LINES_PER_RUN + 1
    assert lines[-1].message.startswith("[taskq] 100 more line(s) dropped")
    per_thread: dict[str, list[int]] = {}
    for line in lines[:-1]:
        _, n, _, i = line.message.split()
        per_thread.setdefault(n, []).append(int(i))
    assert all(seen == sorted(seen) for seen in per_thread.values())  # each in its order


def test_a_failed_write_never_fails_the_task(
    running: JobStore, settings: Settings, dynamodb: Any
) -> None:
    report, _ = report_for(running, settings, dynamodb)
    assert report.lines is not None
    report.lines.table = "no-such-table"

    async def task() -> str:
        report.log("a line that cannot be stored")
        report.progress(checked_progress(0.5))
        return "done"

    assert asyncio.run(report.alongside(task())) == "done"
    stored = running.get(JOB).progress  # the progress write went through on its own
    assert stored is not None and stored.fraction == 0.5
