"""Progress, log lines and heartbeats from inside tasks, on the local cloud: over real HTTP
through the gateway and API Lambda, with the real worker running the tasks, and through
the `taskq logs` command."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from infra.template import FunctionSpec
from taskq.backoff import LEASE_GRACE_S
from taskq.models import QueueMessage, Status
from taskq.store.lines import BYTES_PER_RUN, LINES_PER_RUN
from tests.acceptance.conftest import ROOT, run_taskq
from tests.integration.http import call

LAYER = Path(__file__).resolve().parents[1] / "integration" / "layer"
VISIBILITY_S = 3  # far below the heartbeat task's run: only extending it keeps it hidden


@dataclasses.dataclass
class Reporting:
    cloud: LocalCloud
    env: dict[str, str]
    sqs: Any

    def submit(self, task: str, payload: dict[str, Any]) -> str:
        reply = call("POST", f"{self.cloud.api_url}/jobs", {"task": task, "payload": payload})
        assert reply.status == 202, reply.body
        return str(reply.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        reply = call("GET", f"{self.cloud.api_url}/jobs/{job_id}")
        assert reply.status == 200, reply.body
        return dict(reply.json())

    def wait(self, job_id: str, statuses: set[str], timeout: float = 40) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["status"] not in statuses:
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        return job

    def lines(self, job_id: str, **query: Any) -> list[dict[str, Any]]:
        """Every line, page by page (limit per page from `query`)."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(50):
            params = {**query, **({"after": after} if after else {})}
            path = f"/jobs/{job_id}/logs?" + "&".join(f"{k}={v}" for k, v in params.items())
            reply = call("GET", self.cloud.api_url + path)
            assert reply.status == 200, reply.body
            page = reply.json()
            found += page["lines"]
            if not page["lines"]:
                return found
            after = page["next_cursor"]
        raise AssertionError("more pages than expected")


@pytest.fixture(scope="module")
def stack(moto_server: MotoServer) -> Iterator[Reporting]:
    def customize(spec: FunctionSpec) -> FunctionSpec:
        return dataclasses.replace(spec, layers=(*spec.layers, LAYER))

    with LocalCloud(
        ROOT / "template.yaml", endpoint_url=moto_server.url, stage=f"rep{uuid.uuid4().hex[:8]}",
        parameters={"AuthMode": "off", "TaskModules": "taskq.demo_tasks,reporting_tasks"},
        customize=customize, start_scheduler=False, init_functions=True,
    ) as cloud:  # fmt: skip
        env = {k: v for k, v in cloud.env.items() if k.startswith(("TASKQ_", "AWS_"))}
        sqs = boto3.client(
            "sqs",
            region_name=cloud.region,
            endpoint_url=cloud.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        sqs.set_queue_attributes(
            QueueUrl=env["TASKQ_QUEUE_URL"], Attributes={"VisibilityTimeout": str(VISIBILITY_S)}
        )
        yield Reporting(cloud, env | {"PYTHONPATH": str(LAYER)}, sqs)


def test_progress_shows_while_a_job_runs_and_its_lines_after(stack: Reporting) -> None:
    job_id = stack.submit("report_steps", {"steps": 4, "step_s": 1.0})
    seen: list[float] = []
    deadline = time.monotonic() + 30
    while (job := stack.job(job_id))["status"] != "completed":
        assert time.monotonic() < deadline, job
        if job["status"] == "running" and job["progress"] is not None:
            seen.append(job["progress"]["fraction"])
        time.sleep(0.2)
    assert any(0 < fraction < 1 for fraction in seen), seen
    assert seen == sorted(seen)  # the latest value, never an older one after it
    assert job["progress"]["fraction"] == 1.0 and job["progress"]["message"] == "step 4"
    lines = stack.lines(job_id)
    assert [line["message"] for line in lines] == [f"attempt 1 step {n}" for n in range(1, 5)]
    times = [line["at"] for line in lines]
    assert times == sorted(times) and {line["attempt"] for line in lines} == {1}


def test_lines_stay_in_order_across_a_retry_each_with_its_attempt(stack: Reporting) -> None:
    job_id = stack.submit("report_steps", {"steps": 2, "fail_first": True})
    job = stack.wait(job_id, {"completed", "failed"})
    assert job["status"] == "completed" and job["attempts"] == 2, job
    lines = stack.lines(job_id, limit=1)  # one line a page: the cursor carries across runs
    assert [(line["attempt"], line["message"]) for line in lines] == [
        (1, "attempt 1 step 1"),
        (1, "attempt 1 step 2"),
        (2, "attempt 2 step 1"),
        (2, "attempt 2 step 2"),
    ]
    assert job["progress"]["attempt"] == 2


def test_a_plain_task_reports_a_json_object_from_its_thread(stack: Reporting) -> None:
    job_id = stack.submit("report_steps_sync", {"steps": 3})
    job = stack.wait(job_id, {"completed"})
    assert job["progress"]["detail"] == {"done": 3, "of": 3}
    assert job["progress"]["fraction"] is None
    assert [line["message"] for line in stack.lines(job_id)] == [
        "sync step 1",
        "sync step 2",
        "sync step 3",
    ]


@pytest.mark.parametrize(
    ("lines", "chars", "kept"),
    [
        (LINES_PER_RUN + 50, 10, LINES_PER_RUN),  # the count limit
        (100, 1000, BYTES_PER_RUN // 1007),  # the byte limit: 1007-byte lines
    ],
)
def test_an_attempt_keeps_its_limit_of_lines_and_counts_the_rest(
    stack: Reporting, lines: int, chars: int, kept: int
) -> None:
    job_id = stack.submit("chatty", {"lines": lines, "chars": chars})
    stack.wait(job_id, {"completed"})
    stored = stack.lines(job_id, limit=100)
    assert len(stored) == kept + 1
    assert [line["message"][:6] for line in stored[:-1]] == [f"{n:06d}" for n in range(kept)]
    assert stored[-1]["message"].startswith(f"[taskq] {lines - kept} more line(s) dropped")


@pytest.mark.timeout(120)
def test_a_task_heartbeating_past_its_lease_runs_once(stack: Reporting) -> None:
    # Lease 2 s (+5 s grace) and a 12 s run. Once the first lease would have lapsed, a
    # duplicate of the job's message arrives (as SQS may deliver one): without the
    # renewals it would find the lease lapsed and run the job a second time.
    job_id = stack.submit("heartbeating", {"seconds": 12, "every_s": 0.5})
    running = stack.wait(job_id, {"running"}, timeout=20)
    started = datetime.fromisoformat(running["updated_at"]).timestamp()
    time.sleep(max(0.0, started + 2 + LEASE_GRACE_S + 1.5 - time.time()))
    assert stack.job(job_id)["status"] == "running"
    duplicate = QueueMessage(job_id=job_id, task="heartbeating").model_dump_json()
    stack.sqs.send_message(QueueUrl=stack.env["TASKQ_QUEUE_URL"], MessageBody=duplicate)
    job = stack.wait(job_id, {"completed", "failed"}, timeout=60)
    assert job["status"] == "completed", job
    assert job["result"] == {"attempt": 1, "runs": 1}
    events = call("GET", f"{stack.cloud.api_url}/jobs/{job_id}/events").json()["events"]
    assert [e["kind"] for e in events].count("running") == 1, events


def test_logs_of_an_unknown_job_and_bad_cursors_are_problems(stack: Reporting) -> None:
    unknown = call("GET", f"{stack.cloud.api_url}/jobs/{'0' * 32}/logs")
    assert unknown.status == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    job_id = stack.submit("report_steps", {"steps": 1})
    for bad in ("abc", "-1", "9" * 16, ""):
        reply = call("GET", f"{stack.cloud.api_url}/jobs/{job_id}/logs?after={bad}")
        assert reply.status == 422, (bad, reply.status)
    assert call("GET", f"{stack.cloud.api_url}/jobs/{job_id}/logs?limit=501").status == 422


def test_taskq_logs_prints_and_follows_a_jobs_lines(stack: Reporting) -> None:
    job_id = stack.submit("report_steps", {"steps": 3, "step_s": 0.5})
    followed = run_taskq("logs", job_id, "--follow", env=stack.env, timeout=60)
    assert followed.code == 0, followed.err
    printed = followed.out.splitlines()
    assert [line.split("  ")[-1] for line in printed] == [f"attempt 1 step {n}" for n in (1, 2, 3)]
    assert all("  #1  " in line for line in printed)
    as_json = run_taskq("logs", job_id, "--json", env=stack.env)
    assert [line.startswith('{"at":') for line in as_json.out.splitlines()] == [True] * 3
    missing = run_taskq("logs", "0" * 32, env=stack.env)
    assert missing.code != 0 and missing.error_line().startswith("taskq: error: ")
    assert stack.job(job_id)["status"] == Status.COMPLETED  # --follow stopped at the end
