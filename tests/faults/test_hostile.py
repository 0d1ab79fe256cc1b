"""Hostile and malformed input through the real stack (gateway, API Lambda, poller, worker).

What tests/unit/test_api.py and tests/fuzz/ already cover in-process is not repeated; these are
the cases only the real path shows: sizes at the gateway's, SQS's and DynamoDB's limits, Unicode
and control characters end to end (HTTP -> DynamoDB -> worker -> result), raw header bytes and
percent-encoded paths as the gateway decodes them, foreign bodies on the job queue read by the
real poller, records with missing fields given to the worker function, and a property test that
no payload JSON can express makes submit fail with anything but a taskq error.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.checks import ignored_auth, positive_data_acceptance

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from infra.sandbox import FunctionError
from taskq.errors import TaskqError
from taskq.jobs import PAYLOAD_MAX_BYTES, JobService
from taskq.models import JobRequest
from taskq.store import JobStore, NewJob
from taskq.tasks import load_tasks
from tests.faults.stack import deploy, direct_client
from tests.integration.http import Reply, call, wait_for_status

pytestmark = pytest.mark.integration

KIB = 1024


@pytest.fixture(scope="module")
def cloud(
    fault_emulator: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCloud]:
    log = tmp_path_factory.mktemp("hostile") / "executions.log"
    running = deploy(fault_emulator.url, fault_emulator.url, f"hx{uuid.uuid4().hex[:8]}", log)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def sqs(fault_emulator: MotoServer) -> Any:
    return direct_client("sqs", fault_emulator.url)


def post(cloud: LocalCloud, raw: bytes, path: str = "/jobs", **headers: str) -> Reply:
    return call("POST", cloud.api_url + path, raw=raw, headers=headers, timeout=30)


def assert_problem(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = reply.json()
    assert problem["status"] == status and problem["detail"]
    assert "Traceback" not in reply.body.decode(errors="replace")
    return problem


def declared_too_large(cloud: LocalCloud, length: int) -> int:
    """Send only the headers of a request declaring `length` bytes; return the status."""
    parts = urlsplit(cloud.api_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("POST", "/jobs")
        connection.putheader("content-type", "application/json")
        connection.putheader("content-length", str(length))
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def echo(payload: Any) -> bytes:
    return json.dumps({"task": "echo", "payload": payload}, ensure_ascii=False).encode()


def test_sizes_at_every_limit_through_the_gateway(cloud: LocalCloud) -> None:
    # Over DynamoDB's 400 KB item and the API's 320 KiB body: refused before parsing.
    assert_problem(post(cloud, echo({"blob": "x" * (400 * KIB)})), 413)
    # Over SQS's 256 KiB (the payload limit), under the body limit.
    assert_problem(post(cloud, echo({"blob": "x" * (260 * KIB)})), 413)
    # Characters are not bytes: 90,000 three-byte characters are 270 KB of UTF-8.
    assert_problem(post(cloud, echo({"blob": "€" * 90_000})), 413)
    # Control characters stay escaped in the stored JSON: 50,000 of them take 300 KB.
    assert_problem(post(cloud, echo({"blob": "\u0001" * 50_000})), 413)
    # Over API Gateway's own 10 MB: the gateway answers from the declared length, before the
    # body (the function never sees it).
    assert declared_too_large(cloud, 10 * KIB * KIB + 1) == 413
    # Just under the payload limit is accepted, stored and readable ...
    blob = "y" * (PAYLOAD_MAX_BYTES - 64)
    accepted = post(cloud, echo({"blob": blob}))
    assert accepted.status == 202, accepted.body[:300]
    job_id = accepted.json()["id"]
    assert call("GET", f"{cloud.api_url}/jobs/{job_id}").json()["payload"]["blob"] == blob
    # ... and echo's 250 KiB result, over the 64 KiB result limit, fails the job cleanly.
    failed = wait_for_status(cloud.api_url, job_id, {"failed", "completed"})
    assert failed["status"] == "failed" and "larger than" in failed["error"]
    assert call("GET", f"{cloud.api_url}/healthz").status == 200  # nothing fell over


UNICODE_PAYLOAD: dict[str, Any] = {
    "emoji": "😀👩‍👩‍👧‍👦🏳️‍🌈",
    "rtl": "\u202eabc\u202c עברית العربية",
    "controls": "\u0000\u0001\u0007\u001b[31m\u007f\u0085",
    "separators": "line\u2028para\u2029end",
    "combining": "e\u0301\u0327\u0308",
    "cjk": "漢字かなカナ한국어",
    "bom": "\ufeff",
    "noncharacters": "\ufffe\uffff\U0010ffff",
    "astral": "\U0001f600\U0001d11e",
    "😀 key \u0000": ["\u0000", {"\u202e": "\u2028"}],
    "big": 2**70,
    "negative zero": -0.0,
    "tiny": 5e-324,
}


def test_unicode_and_control_characters_survive_end_to_end(cloud: LocalCloud) -> None:
    key = f"unicode-{uuid.uuid4().hex}"
    first = post(cloud, echo(UNICODE_PAYLOAD), **{"Idempotency-Key": key})
    assert first.status == 202, first.body[:300]
    job_id = first.json()["id"]
    done = wait_for_status(cloud.api_url, job_id, {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    assert done["payload"] == UNICODE_PAYLOAD  # HTTP -> DynamoDB -> HTTP
    assert done["result"] == UNICODE_PAYLOAD  # -> worker -> task -> result -> HTTP
    # The same bytes again: the same job (the request hash is stable for such input).
    again = post(cloud, echo(UNICODE_PAYLOAD), **{"Idempotency-Key": key})
    assert again.status == 202 and again.json()["id"] == job_id
    assert again.headers.get("idempotent-replayed") == "true"


def test_lone_surrogates_are_refused_not_a_500(cloud: LocalCloud) -> None:
    # Valid JSON (an escape), but no Unicode string: it cannot be stored as UTF-8.
    for raw in (
        b'{"task":"echo","payload":{"x":"\\ud800"}}',
        b'{"task":"echo","payload":{"deep":[{"\\udc00 key":null}]}}',
    ):
        problem = assert_problem(post(cloud, raw), 422)
        assert problem["field"] == "payload"
    batch = post(
        cloud,
        b'{"jobs":[{"task":"echo","payload":{"x":"\\udfff"}},{"task":"echo","payload":{}}]}',
        "/jobs:batch",
    )
    assert batch.status == 202
    items = batch.json()["items"]
    assert [item["status"] for item in items] == [422, 202]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"\xff\xfe\x00{", 422),  # not UTF-8: the gateway passes it base64-encoded
        ('{"task":"echo","payload":{"x":"\u00e9"}}'.encode("latin-1"), 422),  # Latin-1 é
        (b"\xef\xbb\xbf{}", 422),  # a UTF-8 byte-order mark (tolerated), then no task
        (b"null", 422),
        (b'"just a string"', 422),
        (b'{"task":"echo","payload":{"x":' + b"9" * 5000 + b"}}", 422),  # over int's digit limit
        (b'{"task":"echo","payload":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}", 422),
        (b'{"task":"echo","payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422),
        (b'{"task":"echo","payload":{},"task":"sleep"}', 422),  # a duplicate key
        (b'{"task":"echo","payload":{"x":NaN}}', 422),  # not JSON, though Python reads it
        (b'{"task":"echo","payload":{"x":-Infinity}}', 422),
    ],
)
def test_odd_bodies_get_a_4xx_problem(cloud: LocalCloud, raw: bytes, status: int) -> None:
    assert_problem(post(cloud, raw), status)


def test_oversized_headers_get_a_clear_4xx_from_the_gateway(cloud: LocalCloud) -> None:
    # API Gateway's HTTP API quota: request line and header values, 10240 bytes together.
    parts = urlsplit(cloud.api_url)
    for name, value in [("X-Big", "a" * 11_000), ("X-Huge", "b" * 100_000)]:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            connection.request("GET", "/healthz", headers={name: value})
            response = connection.getresponse()
            assert response.status == 431
            assert response.getheader("content-type") == "application/json"
            assert json.loads(response.read()) == {"message": "Request Header Fields Too Large"}
        finally:
            connection.close()
    assert call("GET", f"{cloud.api_url}/healthz").status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/%00"),
        ("GET", "/jobs/..%2F..%2Fetc%2Fpasswd"),
        ("GET", "/jobs/" + "A" * 32),
        ("GET", "/jobs/" + "a" * 5000),
        ("GET", "/jobs/%F0%9F%98%80"),
        ("GET", "/jobs/%ff%fe"),
        ("POST", "/jobs/" + "0" * 31 + "%00/cancel"),
        ("GET", "/jobs?status=completed&cursor=%F0%9F%98%80"),
        ("GET", "/jobs?status=completed&cursor=" + "A" * 2000),
        ("GET", "/jobs?status=completed&cursor=eyJpIjoiYnlfc3RhdHVzIn0"),
        ("GET", "/jobs?status=%00"),
        ("GET", "/jobs?status=completed&limit=-1"),
        ("GET", "/jobs?status=completed&limit=" + "9" * 40),
        ("GET", "/jobs?task=%E2%80%AE"),
    ],
)
def test_hostile_paths_and_queries_get_a_4xx_problem(
    cloud: LocalCloud, method: str, path: str
) -> None:
    reply = call(method, cloud.api_url + path)
    assert 400 <= reply.status < 500, (path, reply.status, reply.body[:200])
    assert reply.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "key", ["ü", "a b", "x" * 129, "\xa0", "key\x7f", "k" * 8000, "(){ :; }; echo"]
)
def test_hostile_idempotency_keys_through_the_gateway(cloud: LocalCloud, key: str) -> None:
    # urllib sends header values as Latin-1 bytes; the gateway decodes them as Latin-1.
    reply = post(cloud, echo({}), **{"Idempotency-Key": key})
    problem = assert_problem(reply, 422)
    assert problem["field"] == "Idempotency-Key"


FOREIGN_BODIES = [
    "",
    "   ",
    "null",
    "[]",
    "{}",
    '{"job_id": 5, "task": "echo"}',
    '{"task": "echo"}',
    '{"job_id": "' + "0" * 32 + '"}',
    '{"job_id": "' + "0" * 32 + '", "task": "../../etc"}',
    '{"job_id": "' + "G" * 32 + '", "task": "echo"}',
    json.dumps({"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}}}]}),
    json.dumps({"Type": "Notification", "Message": '{"job_id": "x"}', "TopicArn": "arn"}),
    "\u202e\u0007 not json \U0001f600",
    "x" * (250 * KIB),
]


def test_foreign_bodies_on_the_job_queue_are_dead_lettered_and_spare_real_jobs(
    cloud: LocalCloud, sqs: Any
) -> None:
    marker = uuid.uuid4().hex
    url = cloud.env["TASKQ_QUEUE_URL"]
    bodies = [body or " " for body in FOREIGN_BODIES]  # SQS takes no empty body
    for body in bodies:
        sqs.send_message(
            QueueUrl=url, MessageBody=body,
            MessageAttributes={"blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}},
        )  # fmt: skip
    real = post(cloud, echo({"alongside": marker}))
    assert real.status == 202
    assert wait_for_status(cloud.api_url, real.json()["id"], {"completed"})["result"] == {
        "alongside": marker
    }
    reasons: dict[int, str] = {}
    deadline = time.monotonic() + 30
    dlq = cloud.env["TASKQ_DLQ_URL"]
    while time.monotonic() < deadline and len(reasons) < len(FOREIGN_BODIES):
        for message in sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", []):  # fmt: skip
            attrs = message.get("MessageAttributes", {})
            if message["Body"] in bodies:  # this module's DLQ: only this test sends junk
                reasons[bodies.index(message["Body"])] = attrs["taskq-reason"]["StringValue"]
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(reasons) == list(range(len(bodies))), reasons
    for index, reason in reasons.items():
        assert reason.startswith(("malformed message", "job ")), (
            FOREIGN_BODIES[index][:50],
            reason,
        )
        assert "Traceback" not in reason and len(reason) <= 1000


def test_records_with_missing_fields_given_to_the_worker_function(
    cloud: LocalCloud, fault_emulator: MotoServer
) -> None:
    store = JobStore(cloud.env["TASKQ_TABLE"], direct_client("dynamodb", fault_emulator.url))
    job_id = uuid.uuid4().hex  # stored, never sent: only the record below names it
    store.create(NewJob(job_id, "echo", '{"direct": true}', max_attempts=3))
    good = {
        "messageId": "good", "receiptHandle": "rh-good", "md5OfBody": "-",
        "body": json.dumps({"v": 1, "job_id": job_id, "task": "echo"}),
        "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1",
    }  # fmt: skip
    no_body = {k: v for k, v in good.items() if k != "body"} | {"messageId": "no-body"}
    null_body = good | {"messageId": "null-body", "body": None}
    number_body = good | {"messageId": "number-body", "body": 7}
    worker = cloud.functions["WorkerFunction"]
    response = worker.invoke({"Records": [no_body, good, null_body, number_body]})
    # The unusable records come back for SQS's redrive to decide; the good one ran.
    failed = sorted(item["itemIdentifier"] for item in response["batchItemFailures"])
    assert failed == ["no-body", "null-body", "number-body"]
    assert store.get(job_id).status == "completed"
    # Not an SQS batch at all: refused as a whole with a clear error, nothing touched.
    for event in ({}, {"Records": "x"}):
        with pytest.raises(FunctionError, match="Unexpected batch event type"):
            worker.invoke(event)


def _fuzz_operation(operation: Any, mode: GenerationMode, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        # Which tasks exist is the registry's business, not the served schema's (a
        # schema-valid unknown task is rightly a 422; tests/fuzz narrows the schema to the
        # registered tasks); auth is off on this stack (tests/fuzz covers the keys).
        case.call_and_validate(excluded_checks=[positive_data_acceptance, ignored_auth])

    check()


def test_schemathesis_through_the_real_gateway(cloud: LocalCloud) -> None:
    """tests/fuzz runs schemathesis in-process; this is the same over real HTTP, through the
    local API gateway's event mapping and Mangum: no 5xx, every answer documented and fitting
    the schema, schema-invalid requests (negative mode: malformed bodies, headers, paths as
    they cross the gateway) refused with a 4xx."""
    schema = schemathesis.openapi.from_url(cloud.api_url + "/openapi.json")
    results: list[Any] = list(schema.get_all_operations())
    operations = [result.ok() for result in results]
    assert len(operations) >= 9
    for operation in operations:
        _fuzz_operation(operation, GenerationMode.POSITIVE, 25)
        if any(operation.iter_parameters()) or operation.body:
            _fuzz_operation(operation, GenerationMode.NEGATIVE, 8)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters()),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(), max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=json_values, surrogate=st.booleans())
def test_any_json_payload_is_stored_or_refused_with_a_taskq_error(
    payload: Any, surrogate: bool
) -> None:
    """Whatever Python's json can read (NaN, huge ints, lone surrogates, controls), the
    request model (NaN and Infinity: a 422 naming the value) or submit's own checks answer
    with a clean refusal (a 4xx), never another exception (a 500)."""
    if surrogate:
        payload = {"s": "\ud800", "inner": payload}
    service = JobService(_NoStore(), _NoQueue(), load_tasks(["taskq.demo_tasks"]))  # type: ignore[arg-type]
    with contextlib.suppress(TaskqError, ValidationError):
        service.submit(JobRequest(task="echo", payload={"v": payload}))


class _NoStore:
    clock = staticmethod(time.time)

    def create(self, new: NewJob) -> tuple[Any, bool]:
        json.loads(new.payload_json)  # what was accepted must be stored and read back
        new.payload_json.encode()
        raise _Stored


class _NoQueue:
    pass


class _Stored(TaskqError):
    """The payload passed every check and reached the store."""
