"""Concurrency caps on the local cloud: never more than N attempts at once, measured from
the attempts' own start and end times; a waiting job keeps its attempt count; per-key
caps keep keys apart; a killed worker's slot comes back when its lease lapses."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from infra.template import FunctionSpec
from taskq.backoff import LEASE_GRACE_S
from taskq.models import Job, Status
from taskq.store import JobStore
from tests.acceptance.conftest import ROOT
from tests.faults.capacity import attempt_spans, most_at_once
from tests.integration.http import call

LAYER = Path(__file__).resolve().parents[1] / "integration" / "layer"
TIMEOUT_S = 3  # capped tasks' timeout_s: a killed holder's slot lapses after this + grace
VISIBILITY_S = 20  # a killed batch's records come back this soon (the template's: 190)


@dataclasses.dataclass
class Capped:
    cloud: LocalCloud
    store: JobStore

    def submit(self, task: str, payloads: list[dict[str, Any]]) -> list[str]:
        jobs = [{"task": task, "payload": p} for p in payloads]
        reply = call("POST", f"{self.cloud.api_url}/jobs:batch", {"jobs": jobs})
        assert reply.status == 202, reply.body
        return [item["job"]["id"] for item in reply.json()["items"]]

    def wait(self, ids: list[str], statuses: set[Status], timeout: float) -> list[Job]:
        deadline = time.monotonic() + timeout
        while True:
            jobs = [self.store.get(i) for i in ids]
            if all(j.status in statuses for j in jobs) or time.monotonic() > deadline:
                return jobs
            time.sleep(0.3)


@pytest.fixture(scope="module")
def stack(moto_server: MotoServer) -> Iterator[Capped]:
    def customize(spec: FunctionSpec) -> FunctionSpec:
        return dataclasses.replace(spec, layers=(*spec.layers, LAYER))

    stage = f"cap{uuid.uuid4().hex[:8]}"
    with LocalCloud(
        ROOT / "template.yaml", endpoint_url=moto_server.url, stage=stage,
        parameters={"AuthMode": "off", "TaskModules": "taskq.demo_tasks,capped_tasks"},
        customize=customize, start_scheduler=False, init_functions=True,
    ) as cloud:  # fmt: skip
        env = cloud.env
        session = dict(region_name=cloud.region, endpoint_url=cloud.endpoint_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        boto3.client("sqs", **session).set_queue_attributes(  # type: ignore[call-overload]
            QueueUrl=env["TASKQ_QUEUE_URL"], Attributes={"VisibilityTimeout": str(VISIBILITY_S)}
        )
        dynamodb = boto3.client("dynamodb", **session)  # type: ignore[call-overload]
        yield Capped(cloud, JobStore(env["TASKQ_TABLE"], dynamodb))


def test_a_capped_task_never_runs_more_than_its_cap(stack: Capped) -> None:
    ids = stack.submit("capped", [{"seconds": 0.5}] * 12)
    jobs = stack.wait(ids, {Status.COMPLETED}, timeout=60)
    assert all(j.status == Status.COMPLETED for j in jobs), [(j.id, j.status) for j in jobs]
    assert most_at_once(attempt_spans(jobs, TIMEOUT_S + LEASE_GRACE_S)) == 2
    # waiting for a slot used no attempt: every job ran once, on its first attempt
    assert all(j.attempt == 1 for j in jobs), [j.attempt for j in jobs]


def test_per_key_caps_keep_keys_apart(stack: Capped) -> None:
    payloads = [{"seconds": 1.0, "customer": c} for c in ("a", "b") for _ in range(3)]
    ids = stack.submit("per_customer", payloads)
    jobs = stack.wait(ids, {Status.COMPLETED}, timeout=60)
    assert all(j.status == Status.COMPLETED for j in jobs)
    by_customer = {c: [j for j in jobs if j.payload["customer"] == c] for c in ("a", "b")}
    lease = TIMEOUT_S + LEASE_GRACE_S
    assert all(most_at_once(attempt_spans(js, lease)) == 1 for js in by_customer.values())
    # and the two customers ran side by side
    assert most_at_once(attempt_spans(jobs, lease)) == 2


@pytest.mark.timeout(180)
def test_a_killed_holder_frees_its_slot_when_its_lease_lapses(stack: Capped) -> None:
    worker = stack.cloud.functions["WorkerFunction"]
    ids = stack.submit("capped", [{"seconds": 2.5}] * 6)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if sum(j.status == Status.RUNNING for j in stack.wait(ids, set(), 0)) == 2:
            break
        time.sleep(0.1)
    killed_at = time.time()
    assert worker.kill_all() >= 1
    jobs = stack.wait(ids, {Status.COMPLETED}, timeout=150)
    assert all(j.status == Status.COMPLETED for j in jobs), [(j.id, j.status) for j in jobs]
    lease = TIMEOUT_S + LEASE_GRACE_S
    assert most_at_once(attempt_spans(jobs, lease)) <= 2
    # Someone ran again after the kill: the slots did not leak.
    later = [s for s, _ in attempt_spans(jobs, lease) if s > killed_at]
    assert later
