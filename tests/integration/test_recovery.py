"""Duplicate deliveries, cancellation and the sweeper, on the real local stack.

Each test here watches the job queue drain, so each gets its own stack (own table and
queues on the shared moto server) and nothing another test left behind can interfere.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from infra.poller import EventSourcePoller
from taskq.store import JobStore, NewJob
from tests.integration.conftest import NO_AUTH
from tests.integration.http import call, wait_for_status

pytestmark = pytest.mark.integration
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
SCHEDULED_EVENT = {
    "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
    "account": "123456789012", "time": "2026-11-28T12:00:00Z", "region": "us-east-1",
    "resources": [], "detail": {},
}  # fmt: skip


@pytest.fixture
def cloud(moto_server: MotoServer) -> Iterator[LocalCloud]:
    stage = f"rec{uuid.uuid4().hex[:8]}"
    with LocalCloud(
        TEMPLATE,
        endpoint_url=moto_server.url,
        stage=stage,
        start_scheduler=False,
        parameters=NO_AUTH,
    ) as running:
        yield running


def aws(cloud: LocalCloud, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=cloud.endpoint_url, region_name=cloud.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def queue_depth(cloud: LocalCloud) -> int:
    attrs = aws(cloud, "sqs").get_queue_attributes(
        QueueUrl=cloud.env["TASKQ_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def wait_until_drained(cloud: LocalCloud, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue_depth(cloud) == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"job queue still holds {queue_depth(cloud)} message(s)")


def kinds(cloud: LocalCloud, job_id: str) -> list[str]:
    return [
        e["kind"] for e in call("GET", f"{cloud.api_url}/jobs/{job_id}/events").json()["events"]
    ]


def submit(cloud: LocalCloud, task: str, payload: dict[str, Any]) -> str:
    reply = call("POST", f"{cloud.api_url}/jobs", {"task": task, "payload": payload})
    assert reply.status == 202
    return str(reply.json()["id"])


def send_raw(cloud: LocalCloud, job_id: str, task: str) -> None:
    aws(cloud, "sqs").send_message(
        QueueUrl=cloud.env["TASKQ_QUEUE_URL"],
        MessageBody=json.dumps({"v": 1, "job_id": job_id, "task": task}),
    )


def test_a_message_delivered_again_after_completion_runs_nothing(cloud: LocalCloud) -> None:
    job_id = submit(cloud, "echo", {"once": True})
    wait_for_status(cloud.api_url, job_id, {"completed"})
    wait_until_drained(cloud)
    send_raw(cloud, job_id, "echo")  # SQS's at-least-once delivery, made certain
    send_raw(cloud, job_id, "echo")
    wait_until_drained(cloud)  # the worker took both and acknowledged them
    assert kinds(cloud, job_id) == ["pending", "running", "completed"]


def test_a_message_delivered_again_while_running_is_deferred_not_run(
    cloud: LocalCloud,
) -> None:
    job_id = submit(cloud, "sleep", {"seconds": 3})
    wait_for_status(cloud.api_url, job_id, {"running"}, timeout=10)
    send_raw(cloud, job_id, "sleep")
    done = wait_for_status(cloud.api_url, job_id, {"completed"}, timeout=20)
    assert done["attempts"] == 1
    assert kinds(cloud, job_id) == ["pending", "running", "completed"]
    # The duplicate was received and put back until the lease would lapse, not dropped.
    assert queue_depth(cloud) == 1


def test_cancel_before_the_worker_takes_it(cloud: LocalCloud) -> None:
    worker = cloud.pollers["WorkerFunction"]
    worker.stop()
    job_id = submit(cloud, "echo", {"doomed": True})
    cancelled = call("POST", f"{cloud.api_url}/jobs/{job_id}/cancel")
    assert cancelled.status == 200 and cancelled.json()["status"] == "cancelled"
    again = call("POST", f"{cloud.api_url}/jobs/{job_id}/cancel")
    assert again.status == 409
    assert again.headers["content-type"] == "application/problem+json"
    resumed = EventSourcePoller(
        worker.function, worker.queue_url, worker.queue_arn, worker.spec,
        endpoint_url=cloud.endpoint_url, region=cloud.region,
    ).start()  # fmt: skip
    try:
        wait_until_drained(cloud)  # its message was received and acknowledged, unrun
    finally:
        resumed.stop()
    assert kinds(cloud, job_id) == ["pending", "cancelled"]


def test_a_running_job_cannot_be_cancelled(cloud: LocalCloud) -> None:
    job_id = submit(cloud, "sleep", {"seconds": 2})
    wait_for_status(cloud.api_url, job_id, {"running"}, timeout=10)
    reply = call("POST", f"{cloud.api_url}/jobs/{job_id}/cancel")
    assert reply.status == 409 and "running" in reply.json()["detail"]
    wait_for_status(cloud.api_url, job_id, {"completed"}, timeout=20)


def test_the_sweeper_recovers_a_job_stored_but_never_sent(cloud: LocalCloud) -> None:
    # The API wrote the job, then crashed before SendMessage (ten minutes ago).
    past = JobStore(
        cloud.env["TASKQ_TABLE"], aws(cloud, "dynamodb"), clock=lambda: time.time() - 600
    )
    lost = uuid.uuid4().hex
    past.create(NewJob(lost, "echo", '{"lost": true}', max_attempts=3))
    # A worker claimed another job, then died; its message is gone too.
    abandoned = uuid.uuid4().hex
    past.create(NewJob(abandoned, "echo", "{}", max_attempts=3))
    past.claim(abandoned, lease_until=time.time() - 590)
    # A fresh pending job is left alone: its message may simply be waiting in the queue.
    fresh = uuid.uuid4().hex
    JobStore(cloud.env["TASKQ_TABLE"], aws(cloud, "dynamodb")).create(
        NewJob(fresh, "echo", "{}", max_attempts=3)
    )

    report = cloud.functions["SweeperFunction"].invoke(SCHEDULED_EVENT)
    assert report["requeued"] == {"pending": 1, "running": 1, "retrying": 0, "scheduled": 0}, report
    assert wait_for_status(cloud.api_url, lost, {"completed"})["result"] == {"lost": True}
    recovered = wait_for_status(cloud.api_url, abandoned, {"completed"})
    assert recovered["attempts"] == 2  # the dead worker's attempt counts
    assert "requeued" in kinds(cloud, lost)
    assert kinds(cloud, fresh) == ["pending"]  # never sent, but not yet stale either

    again = cloud.functions["SweeperFunction"].invoke(SCHEDULED_EVENT)
    assert sum(again["requeued"].values()) == 0  # nothing left to recover, nothing sent twice


def dead_letters(cloud: LocalCloud, wait_s: float) -> list[dict[str, Any]]:
    """Every message in this stack's DLQ after `wait_s` of quiet: received (held 60 s, so
    none is counted twice) with its body parsed and taskq's reason."""
    sqs, url = aws(cloud, "sqs"), cloud.env["TASKQ_DLQ_URL"]
    time.sleep(wait_s)
    out: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
        MessageAttributeNames=["All"], WaitTimeSeconds=1,
    ).get("Messages", []):  # fmt: skip
        for message in batch:
            attrs = message.get("MessageAttributes", {})
            reason = attrs.get("taskq-reason", {}).get("StringValue", "")
            out.append({**json.loads(message["Body"]), "reason": reason})
    return out


def test_a_failed_jobs_message_delivered_again_adds_no_second_dlq_copy(cloud: LocalCloud) -> None:
    reply = call(
        "POST", f"{cloud.api_url}/jobs",
        {"task": "fail", "payload": {"times": 100}, "max_attempts": 1},
    )  # fmt: skip
    assert reply.status == 202
    job_id = reply.json()["id"]
    wait_for_status(cloud.api_url, job_id, {"failed"})
    wait_until_drained(cloud)
    send_raw(cloud, job_id, "fail")  # SQS's at-least-once delivery, twice over
    send_raw(cloud, job_id, "fail")
    wait_until_drained(cloud)
    copies = [m for m in dead_letters(cloud, wait_s=1.0) if m.get("job_id") == job_id]
    assert len(copies) == 1, copies
    assert kinds(cloud, job_id) == ["pending", "running", "failed"]


def test_a_message_naming_another_task_leaves_its_job_untouched(cloud: LocalCloud) -> None:
    reply = call(
        "POST", f"{cloud.api_url}/jobs", {"task": "echo", "payload": {"n": 1}, "delay_s": 60}
    )
    assert reply.status == 202
    job_id = reply.json()["id"]
    before = call("GET", f"{cloud.api_url}/jobs/{job_id}").json()
    assert before["status"] == "scheduled"
    send_raw(cloud, job_id, "fail")  # forged, corrupt, or from an older deployment
    forged = [m for m in dead_letters(cloud, wait_s=2.0) if m.get("job_id") == job_id]
    assert len(forged) == 1, forged
    assert "names task 'fail'" in forged[0]["reason"] and "'echo'" in forged[0]["reason"]
    # not failed, run, woken or otherwise changed
    assert call("GET", f"{cloud.api_url}/jobs/{job_id}").json() == before
    cancelled = call("POST", f"{cloud.api_url}/jobs/{job_id}/cancel")
    assert cancelled.status == 200  # the real job goes on: still its owner's to cancel
