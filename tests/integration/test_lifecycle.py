"""The whole lifecycle over real HTTP: local gateway -> API Lambda (Mangum) -> DynamoDB/SQS on a
moto server process -> event-source poller -> worker Lambda. Nothing is mocked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from tests.integration.conftest import NO_AUTH
from tests.integration.http import call, wait_for_status

pytestmark = pytest.mark.integration
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def cloud(moto_server: MotoServer) -> Iterator[LocalCloud]:
    stage = f"life{int(time.time() * 1000) % 10**8}"
    with LocalCloud(
        TEMPLATE, endpoint_url=moto_server.url, stage=stage, parameters=NO_AUTH
    ) as running:
        yield running


@pytest.fixture(scope="module")
def sqs(cloud: LocalCloud) -> Any:
    return boto3.client(
        "sqs", endpoint_url=cloud.endpoint_url, region_name=cloud.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def submit(cloud: LocalCloud, task: str, payload: dict[str, Any], **headers: str) -> dict[str, Any]:
    reply = call("POST", f"{cloud.api_url}/jobs", {"task": task, "payload": payload},
                 headers=headers)  # fmt: skip
    assert reply.status == 202, reply.body
    assert reply.headers["location"] == f"/jobs/{reply.json()['id']}"
    return reply.json()  # type: ignore[no-any-return]


def events(cloud: LocalCloud, job_id: str) -> list[dict[str, Any]]:
    reply = call("GET", f"{cloud.api_url}/jobs/{job_id}/events")
    assert reply.status == 200
    return reply.json()["events"]  # type: ignore[no-any-return]


def dead_letters(sqs: Any, cloud: LocalCloud, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Everything in the DLQ right now (received, then made visible again)."""
    url = cloud.env["TASKQ_DLQ_URL"]
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
            VisibilityTimeout=5, WaitTimeSeconds=0,
        ).get("Messages", [])  # fmt: skip
        if not batch:
            break
        for message in batch:
            seen[message["MessageId"]] = message
    for message in seen.values():
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return list(seen.values())


def test_submitted_job_completes(cloud: LocalCloud) -> None:
    job = submit(cloud, "echo", {"message": "hi"})
    done = wait_for_status(cloud.api_url, job["id"], {"completed"})
    assert done["result"] == {"message": "hi"}
    assert done["attempts"] == 1 and done["error"] is None
    assert [e["kind"] for e in events(cloud, job["id"])] == ["pending", "running", "completed"]


def test_a_failing_job_retries_with_backoff_then_completes(cloud: LocalCloud) -> None:
    job = submit(cloud, "fail", {"times": 2})
    done = wait_for_status(cloud.api_url, job["id"], {"completed"}, timeout=40)
    assert done["attempts"] == 3 and done["result"] == {"succeeded_on_attempt": 3}
    history = events(cloud, job["id"])
    assert [e["kind"] for e in history] == [
        "pending", "running", "retrying", "running", "retrying", "running", "completed",
    ]  # fmt: skip
    retries = [e for e in history if e["kind"] == "retrying"]
    assert [e["attempt"] for e in retries] == [1, 2]
    # Full jitter: each delay is at most the doubling ceiling (base 1 s) ...
    for event, ceiling in zip(retries, [1, 2], strict=True):
        assert 1 <= event["delay_s"] <= ceiling
    # ... and SQS really held the message back for it before the next attempt ran.
    for retry, next_run in zip(retries, [history[3], history[5]], strict=True):
        waited = _at(next_run) - _at(retry)
        assert waited >= retry["delay_s"] - 0.5, (waited, retry)


def test_exhausted_job_fails_into_the_dlq(cloud: LocalCloud, sqs: Any) -> None:
    job = submit(cloud, "fail", {"times": 5})
    failed = wait_for_status(cloud.api_url, job["id"], {"failed"}, timeout=40)
    assert failed["attempts"] == 3 and failed["max_attempts"] == 3
    assert "attempts exhausted" in failed["error"]
    history = events(cloud, job["id"])
    assert [e["kind"] for e in history].count("running") == 3
    assert history[-1]["kind"] == "failed" and history[-1]["attempt"] == 3
    mine = [
        m for m in dead_letters(sqs, cloud)
        if m.get("MessageAttributes", {}).get("taskq-job-id", {}).get("StringValue") == job["id"]
    ]  # fmt: skip
    assert len(mine) == 1
    assert json.loads(mine[0]["Body"])["job_id"] == job["id"]


def test_idempotency_key_over_http(cloud: LocalCloud) -> None:
    key = f"order-{time.time_ns()}"
    first = submit(cloud, "echo", {"n": 1}, **{"Idempotency-Key": key})
    again = submit(cloud, "echo", {"n": 1}, **{"Idempotency-Key": key})
    assert again["id"] == first["id"]
    clash = call("POST", f"{cloud.api_url}/jobs", {"task": "echo", "payload": {"n": 2}},
                 headers={"Idempotency-Key": key})  # fmt: skip
    assert clash.status == 409
    assert clash.headers["content-type"] == "application/problem+json"
    wait_for_status(cloud.api_url, first["id"], {"completed"})
    assert [e["kind"] for e in events(cloud, first["id"])].count("running") == 1


def test_malformed_records_are_dead_lettered_and_spare_the_batch(
    cloud: LocalCloud, sqs: Any
) -> None:
    marker = f"junk-{time.time_ns()}"
    bodies = [marker, json.dumps({"job_id": "f" * 32, "task": "echo", "note": marker})]
    for body in bodies:
        sqs.send_message(QueueUrl=cloud.env["TASKQ_QUEUE_URL"], MessageBody=body)
    job = submit(cloud, "echo", {"alongside": True})
    wait_for_status(cloud.api_url, job["id"], {"completed"})
    deadline = time.monotonic() + 20
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(found) < 2:
        found = [m for m in dead_letters(sqs, cloud) if marker in m["Body"]]
        time.sleep(0.3)
    reasons = sorted(m["MessageAttributes"]["taskq-reason"]["StringValue"] for m in found)
    assert len(reasons) == 2
    assert reasons[0].startswith("job ffff") and "not found" in reasons[0]
    assert reasons[1].startswith("malformed message")


def test_listing_pages_through_an_index(cloud: LocalCloud) -> None:
    ids = {submit(cloud, "echo", {"i": i})["id"] for i in range(5)}
    for job_id in ids:
        wait_for_status(cloud.api_url, job_id, {"completed"})
    seen: list[str] = []
    cursor = ""
    for _ in range(50):
        query = "status=completed&task=echo&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = call("GET", f"{cloud.api_url}/jobs?{query}").json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))  # no job twice across pages
    bad = call("GET", f"{cloud.api_url}/jobs?status=completed&cursor=forged")
    assert bad.status == 422


def test_errors_reach_clients_as_problems_without_internals(cloud: LocalCloud) -> None:
    cases = [
        ("POST", "/jobs", b"{not json"),
        ("POST", "/jobs", json.dumps({"task": "nope"}).encode()),
        ("GET", "/jobs/" + "0" * 32, None),
        ("GET", "/jobs/not-an-id", None),
        ("GET", "/nowhere", None),
    ]
    for method, path, raw in cases:
        reply = call(method, cloud.api_url + path, raw=raw)
        assert 400 <= reply.status < 500, (path, reply.status)
        assert reply.headers["content-type"] == "application/problem+json"
        text = reply.body.decode()
        assert "Traceback" not in text and "taskq-" not in text and "arn:aws" not in text


def test_the_api_handler_accepts_a_rest_api_proxy_event(cloud: LocalCloud) -> None:
    event = json.loads((Path(__file__).parent / "events" / "rest_get_healthz.json").read_text())
    response = cloud.functions["ApiFunction"].invoke(event)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()
