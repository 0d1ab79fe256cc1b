"""Priorities on the local cloud: one queue per priority, one mapping each, as on Lambda.

A backlog of low-priority jobs cannot take the high-priority queue's share of the workers:
high jobs submitted behind it finish while most of the backlog still waits. The CLI
submits with --priority, lists by it, and shows each queue's depth.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from taskq.models import Status
from tests.acceptance.conftest import ROOT, Ran, run_taskq
from tests.integration.http import call

LOW_JOBS = 100
# Each low job holds a worker slot this long: the low mapping's 2 batches of 10 drain the
# backlog in about 25 s, much longer than the high jobs need (even on a loaded CI machine).
LOW_SLEEP_S = 5.0
HIGH_JOBS = 5


@pytest.fixture(scope="module")
def cloud(moto_server: MotoServer) -> Iterator[LocalCloud]:
    stage = f"pri{uuid.uuid4().hex[:8]}"
    with LocalCloud(
        ROOT / "template.yaml", endpoint_url=moto_server.url, stage=stage,
        parameters={"AuthMode": "off"}, start_scheduler=False, init_functions=True,
    ) as running:  # fmt: skip
        yield running


def _taskq(cloud: LocalCloud, *argv: str) -> Ran:
    env = {k: v for k, v in cloud.env.items() if k.startswith(("TASKQ_", "AWS_"))}
    return run_taskq(*argv, env=env)


def _status(cloud: LocalCloud, job_id: str) -> str:
    return str(call("GET", f"{cloud.api_url}/jobs/{job_id}").json()["status"])


@pytest.mark.timeout(240)
def test_high_priority_jobs_pass_a_low_priority_backlog(cloud: LocalCloud) -> None:
    low = {"task": "sleep", "payload": {"seconds": LOW_SLEEP_S}, "priority": "low"}
    backlog: list[str] = []
    for _ in range(LOW_JOBS // 50):
        reply = call("POST", f"{cloud.api_url}/jobs:batch", {"jobs": [low] * 50})
        assert reply.status == 202, reply.body
        backlog += [item["job"]["id"] for item in reply.json()["items"]]
    # Over HTTP (a CLI process starts in about a second), one batch behind the backlog.
    urgent = [{"task": "echo", "payload": {"n": n}, "priority": "high"} for n in range(HIGH_JOBS)]
    reply = call("POST", f"{cloud.api_url}/jobs:batch", {"jobs": urgent})
    assert reply.status == 202, reply.body
    high = [item["job"]["id"] for item in reply.json()["items"]]
    assert all(item["job"]["priority"] == "high" for item in reply.json()["items"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_status(cloud, j) != "completed" for j in high):
        time.sleep(0.2)
    assert all(_status(cloud, j) == "completed" for j in high)
    waiting = [j for j in backlog if _status(cloud, j) in (Status.PENDING, Status.RUNNING)]
    assert len(waiting) >= LOW_JOBS // 2, f"only {len(waiting)} low jobs still waiting"

    listed = _taskq(cloud, "jobs", "ls", "--status", "completed", "--priority", "high", "--json")
    assert listed.code == 0, listed.err
    assert set(high) <= {j["id"] for j in listed.json()["items"]}
    stats = _taskq(cloud, "stats", "--json")
    assert stats.code == 0, stats.err
    queues = stats.json()["queues"]
    assert set(queues) == {"high", "default", "low"}
    assert queues["high"]["visible"] == 0  # nothing high left behind the backlog

    ran = _taskq(cloud, "submit", "echo", "--priority", "high", "--wait", "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["priority"] == "high" and ran.json()["status"] == "completed"

    # The low jobs keep moving (weighted, not strict): all of them finish.
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and any(_status(cloud, j) != "completed" for j in backlog):
        time.sleep(1.0)
    assert all(_status(cloud, j) == "completed" for j in backlog)


def test_a_bad_priority_is_a_422_naming_it(cloud: LocalCloud) -> None:
    reply = call("POST", f"{cloud.api_url}/jobs", {"task": "echo", "priority": "urgent"})
    assert reply.status == 422
    assert reply.json()["field"] == "priority"
    ran = _taskq(cloud, "submit", "echo", "--priority", "urgent")
    assert ran.code == 2 and "urgent" in ran.err
