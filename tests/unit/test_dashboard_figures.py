"""The overview's figures: per-minute throughput from the phase index's keys, its chart's
geometry, and `taskq dashboard`'s refusals (one line, exit 2) before it serves anything."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from taskq.cli import EXIT_USAGE, main_with_exit_code
from taskq.config import Settings
from taskq.dashboard.chart import HEIGHT, per_minute
from taskq.models import JobRequest
from taskq.stats import Throughput, throughput
from taskq.store import JobStore
from taskq.wiring import Services
from tests.unit.conftest import FakeClock


def test_throughput_counts_each_minute_from_the_index(
    services: Services, store: JobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = clock.now
    made = []
    for minute in (0, 0, 2):
        clock.now = start + 60 * minute
        new = services.jobs._prepare(JobRequest(task="echo", payload={"message": "m"}), None, "t")
        made.append(store.create(new)[0])
    clock.now = start + 60 * 3
    claimed = store.claim(made[0].id, lease_until=clock.now + 30)
    store.complete(made[0].id, claimed.attempt, '{"ok": true}')
    queries: list[dict[str, Any]] = []
    original = store._send

    def spy(operation: str, kwargs: dict[str, Any]) -> Any:
        assert operation != "scan"
        queries.append(kwargs)
        return original(operation, kwargs)

    monkeypatch.setattr(store, "_send", spy)
    figures = throughput(store, minutes=10, now=clock.now)
    assert figures.complete
    assert sum(figures.submitted) == 3 and sum(figures.completed) == 1 and sum(figures.failed) == 0
    first = int((start - figures.start) // 60)
    assert figures.submitted[first] == 2 and figures.submitted[first + 2] == 1
    assert figures.completed[first + 3] == 1
    # Index entries only: the chart reads no job item.
    assert queries and all(q["IndexName"] == "by_phase" for q in queries)


def test_throughput_outside_the_window_is_left_out(store: JobStore, clock: FakeClock) -> None:
    figures = throughput(store, minutes=60, now=clock.now + 7200)
    assert figures.submitted == [0] * 60 and figures.complete


def test_chart_fits_the_busiest_minute() -> None:
    figures = Throughput(
        start=0.0, submitted=[0, 4, 2], completed=[0, 1, 3], failed=[0, 0, 1], complete=False
    )
    chart = per_minute(figures)
    points = {line.name: line.points.split() for line in chart.lines}
    assert chart.peak == 4 and not chart.complete
    assert [line.total for line in chart.lines] == [6, 4, 1]
    top = min(float(p.split(",")[1]) for p in points["submitted"])
    assert top == min(y for y, _ in chart.y_ticks)  # the peak touches the top tick
    assert all(float(p.split(",")[1]) <= HEIGHT for ps in points.values() for p in ps)
    assert chart.x_ticks[0][1] == "00:00"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_TABLE", settings.table_name)
    monkeypatch.setenv("TASKQ_QUEUE_URL", settings.queue_url)
    monkeypatch.setenv("TASKQ_DLQ_URL", settings.dlq_url)
    monkeypatch.delenv("TASKQ_DASHBOARD_TOKEN", raising=False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "0.0.0.0"], "reachable from other machines: give a token"),
        (["--host", "10.1.2.3", "--token", "short"], "at least 16 characters"),
        (["--port", "0"], "--port"),
    ],
)
def test_dashboard_refuses_unsafe_or_bad_options(
    cli_env: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main_with_exit_code(["dashboard", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("taskq: error: ") and message in err[0]


def test_dashboard_says_when_its_port_is_taken(
    cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        assert main_with_exit_code(["dashboard", "--port", port]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
