"""The API in Lambda containers through `sam local start-api`, the worker on the local poller.

Real parts only: HTTP to SAM's server on loopback, the API handler in a container of the
Lambda image (the stand-in here, AWS's where present), moto as a process reached through the
run's Docker bridge. Deselected from `make test` (marker `docker`); `make test-sam` runs them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from infra.sam_api import SamLocalApi
from infra.sandbox import FunctionError
from taskq.models import Status
from tests.integration.http import Reply, call
from tests.sam_local.conftest import Direct

pytestmark = pytest.mark.docker

EVENTS = Path(__file__).resolve().parents[1] / "events"
WAIT_S = 60.0  # a failing job's three attempts with backoff, and a cold container or two
PROBLEM = "application/problem+json"


def submit(api: SamLocalApi, body: dict[str, Any], **headers: str) -> Reply:
    return call("POST", f"{api.url}/jobs", body, headers=headers, timeout=60)


def wait_status(api: SamLocalApi, job_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        job: dict[str, Any] = call("GET", f"{api.url}/jobs/{job_id}", timeout=60).json()
        if job["status"] == status:
            return job
        assert time.monotonic() < deadline, f"{job_id} is {job['status']} after {WAIT_S} s"
        time.sleep(0.5)


def assert_problem(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, reply.body[:500]
    assert reply.headers["content-type"].startswith(PROBLEM), reply.headers
    problem: dict[str, Any] = reply.json()
    assert problem["status"] == status and problem["title"] and problem["detail"], problem
    assert b"Traceback" not in reply.body
    return problem


def test_a_job_submitted_through_sam_local_completes(sam_api: SamLocalApi) -> None:
    reply = submit(sam_api, {"task": "echo", "payload": {"message": "from a container"}})
    assert reply.status == 202, reply.body
    job = reply.json()
    assert reply.headers["location"].endswith(f"/jobs/{job['id']}")
    done = wait_status(sam_api, job["id"], "completed")
    assert done["result"] == {"message": "from a container"} and done["attempts"] == 1
    # It was served by a Lambda container on the run's own network, not by a local gateway.
    assert sam_api.network is not None and sam_api.network.containers()


def test_listing_finds_the_job_by_status_and_task(sam_api: SamLocalApi) -> None:
    job_id = submit(sam_api, {"task": "echo", "payload": {"message": "listed"}}).json()["id"]
    wait_status(sam_api, job_id, "completed")
    by_status = call("GET", f"{sam_api.url}/jobs?status=completed&limit=100", timeout=60).json()
    by_task = call("GET", f"{sam_api.url}/jobs?task=echo&limit=100", timeout=60).json()
    assert job_id in [job["id"] for job in by_status["items"]]
    assert job_id in [job["id"] for job in by_task["items"]]
    assert {job["status"] for job in by_status["items"]} == {"completed"}


def test_a_scheduled_job_is_cancelled_once(sam_api: SamLocalApi, direct: Direct) -> None:
    job_id = submit(sam_api, {"task": "echo", "payload": {"message": "x"}, "delay_s": 600}).json()[
        "id"
    ]
    assert call("GET", f"{sam_api.url}/jobs/{job_id}", timeout=60).json()["status"] == "scheduled"
    cancelled = call("POST", f"{sam_api.url}/jobs/{job_id}/cancel", timeout=60)
    assert cancelled.status == 200 and cancelled.json()["status"] == "cancelled"
    assert direct.store.get(job_id).status == Status.CANCELLED
    assert_problem(call("POST", f"{sam_api.url}/jobs/{job_id}/cancel", timeout=60), 409)


def test_an_idempotency_key_replays_and_refuses_another_body(sam_api: SamLocalApi) -> None:
    key = f"sam-{uuid.uuid4().hex}"
    body = {"task": "echo", "payload": {"message": "once"}}
    first = submit(sam_api, body, **{"Idempotency-Key": key})
    again = submit(sam_api, body, **{"Idempotency-Key": key})
    assert first.status == 202 and again.status in (200, 202), again.body
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    other = submit(sam_api, {**body, "payload": {"message": "twice"}}, **{"Idempotency-Key": key})
    assert_problem(other, 409)


def test_a_job_that_keeps_failing_ends_in_the_dlq(sam_api: SamLocalApi, direct: Direct) -> None:
    job_id = submit(sam_api, {"task": "fail", "payload": {"times": 5}}).json()["id"]
    job = wait_status(sam_api, job_id, "failed")
    assert job["attempts"] == 3 and job["error"]
    deadline = time.monotonic() + WAIT_S
    bodies: list[str] = []
    while not any(job_id in body for body in bodies):
        assert time.monotonic() < deadline, f"no DLQ message names {job_id}: {bodies}"
        got = direct.sqs.receive_message(
            QueueUrl=direct.queue.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        bodies += [message["Body"] for message in got.get("Messages", [])]
    assert direct.store.get(job_id).status == Status.FAILED


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "field"),
    [
        ("POST", "/jobs", b'{"task": "echo"', 422, "body"),
        ("POST", "/jobs", b'{"task": "no-such-task", "payload": {}}', 422, "task"),
        ("POST", "/jobs", b'{"task": "fail", "payload": {"times": "3"}}', 422, None),
        ("GET", "/jobs/not-a-job-id", None, 422, None),
        ("GET", f"/jobs/{'0' * 32}", None, 404, None),
        ("GET", "/jobs?limit=0", None, 422, "limit"),
    ],
)
def test_bad_requests_get_problem_json(
    sam_api: SamLocalApi, method: str, path: str, raw: bytes | None, status: int, field: str | None
) -> None:
    reply = call(method, f"{sam_api.url}{path}", raw=raw, timeout=60)
    problem = assert_problem(reply, status)
    if field is not None:
        assert problem.get("field") == field, problem


def test_a_rest_api_v1_event_runs_in_the_container(sam_api: SamLocalApi, direct: Direct) -> None:
    """API Gateway's REST (payload 1.0) event, invoked through `sam local start-lambda` in
    the API's container: Mangum reads both payload versions."""
    api = sam_api.in_container("ApiFunction")
    try:
        answer = api.invoke(json.loads((EVENTS / "apigw-rest-post-jobs.json").read_text()))
        health = api.invoke(json.loads((EVENTS / "apigw-rest-get-healthz.json").read_text()))
    finally:
        api.close()
    assert answer["statusCode"] == 202, answer
    job = json.loads(answer["body"])
    assert job["task"] == "echo" and job["payload"] == {"message": "hi from sam"}
    assert direct.store.get(job["id"]).task == "echo"
    wait_status(sam_api, job["id"], "completed")
    assert health["statusCode"] == 200, health


def test_a_handler_error_in_the_container_is_reported_as_lambda_reports_it(
    sam_api: SamLocalApi,
) -> None:
    """An event no API Gateway sends: Mangum raises in the container, and the poller's invoker
    gets it as Lambda's error, not as a result it would act on (SAM leaves out the
    X-Amz-Function-Error header here: infra/lambda_endpoint.py)."""
    api = sam_api.in_container("ApiFunction")
    try:
        with pytest.raises(FunctionError) as caught:
            api.invoke({"not": "an API Gateway event"})
    finally:
        api.close()
    assert caught.value.error_type == "RuntimeError", caught.value
    assert "unable to infer a handler" in caught.value.message


def test_the_emulator_answers_on_loopback_and_the_runs_bridge_only(sam_api: SamLocalApi) -> None:
    assert sam_api.cloud is not None and sam_api.network is not None
    port = urlsplit(sam_api.cloud.endpoint_url).port
    assert port is not None
    listed = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    addresses = {line.split()[3].split("/")[0] for line in listed.splitlines()}
    assert {"127.0.0.1", sam_api.network.gateway} <= addresses
    for address in sorted(addresses):
        reachable = True
        try:
            socket.create_connection((address, port), timeout=2).close()
        except OSError:
            reachable = False
        assert reachable == (address in ("127.0.0.1", sam_api.network.gateway)), address
