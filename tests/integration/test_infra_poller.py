"""infra.poller against a real moto queue: Lambda's SQS event, partial failures, errors."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.clients import client
from infra.emulator import MotoServer
from infra.poller import EventSourcePoller
from infra.sandbox import LocalFunction
from infra.template import FunctionSpec, SqsEventSpec

pytestmark = pytest.mark.integration

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "functions" / "toy"
REGION = "us-east-1"
PARTIAL = ("ReportBatchItemFailures",)


@pytest.fixture
def sqs(moto_server: MotoServer) -> Any:
    return client("sqs", endpoint_url=moto_server.url, region=REGION)


@pytest.fixture
def queue(sqs: Any) -> Iterator[tuple[str, str]]:
    """A queue with a 1 s visibility timeout, so failed records come back quickly."""
    url = sqs.create_queue(
        QueueName=f"poll-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "1"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    yield url, arn["QueueArn"]
    sqs.delete_queue(QueueUrl=url)


def run_until(poller: EventSourcePoller, done: Callable[[], bool], timeout: float = 10.0) -> None:
    poller.start()
    try:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done(), poller.stats
    finally:
        poller.stop()


def messages_left(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs[n]) for n in names)


def make_poller(
    function: LocalFunction, queue: tuple[str, str], moto: MotoServer, **spec: Any
) -> EventSourcePoller:
    event = SqsEventSpec("Queue", **{"maximum_concurrency": 2, **spec})
    return EventSourcePoller(
        function, queue[0], queue[1], event, endpoint_url=moto.url, region=REGION
    )


def test_partial_failure_deletes_only_successes(
    moto_server: MotoServer, sqs: Any, queue: tuple[str, str], tmp_path: Path
) -> None:
    store = tmp_path / "events.jsonl"
    spec = FunctionSpec("Partial", TOY, "app.partial", timeout=5)
    function = LocalFunction(spec, extra_env={"STORE_PATH": str(store)}, max_concurrency=2)
    url, arn = queue
    sqs.send_message(
        QueueUrl=url,
        MessageBody="ok-1",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "x"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x01"},
        },
    )
    sqs.send_message(QueueUrl=url, MessageBody="fail-1")
    sqs.send_message(QueueUrl=url, MessageBody="ok-2")
    poller = make_poller(function, queue, moto_server, function_response_types=PARTIAL)
    try:
        # 3 records, then "fail-1" again once its 1 s visibility timeout has passed
        run_until(poller, lambda: poller.stats.records >= 4)
    finally:
        function.close()
    assert poller.stats.deleted == 2
    assert poller.stats.invocation_errors == 0
    assert messages_left(sqs, url) == 1
    left = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3, MessageSystemAttributeNames=["All"])
    (message,) = left["Messages"]
    assert message["Body"] == "fail-1"
    assert int(message["Attributes"]["ApproximateReceiveCount"]) >= 3

    records = [r for line in store.read_text().splitlines() for r in json.loads(line)["Records"]]
    ok1 = next(r for r in records if r["body"] == "ok-1")
    assert set(ok1) == {
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes",
        "md5OfBody", "eventSource", "eventSourceARN", "awsRegion",
    }  # fmt: skip
    assert (ok1["eventSource"], ok1["eventSourceARN"], ok1["awsRegion"]) == ("aws:sqs", arn, REGION)
    assert ok1["md5OfBody"] == hashlib.md5(b"ok-1").hexdigest()  # noqa: S324 - SQS's checksum
    assert {
        "ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"
    } <= set(ok1["attributes"])  # fmt: skip
    assert ok1["messageAttributes"] == {
        "kind": {
            "stringValue": "x",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "blob": {
            "binaryValue": "AQ==",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }


def test_function_error_deletes_nothing(
    moto_server: MotoServer, sqs: Any, queue: tuple[str, str]
) -> None:
    function = LocalFunction(FunctionSpec("Boom", TOY, "app.boom", timeout=5), max_concurrency=2)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queue[0], MessageBody=body)
    poller = make_poller(function, queue, moto_server, function_response_types=PARTIAL)
    try:
        run_until(poller, lambda: poller.stats.invocation_errors >= 1)
    finally:
        function.close()
    assert poller.stats.deleted == 0
    assert messages_left(sqs, queue[0]) == 2


def test_without_report_batch_item_failures_success_deletes_all(
    moto_server: MotoServer, sqs: Any, queue: tuple[str, str]
) -> None:
    function = LocalFunction(FunctionSpec("Partial", TOY, "app.partial", timeout=5))
    sqs.send_message_batch(
        QueueUrl=queue[0],
        Entries=[{"Id": str(i), "MessageBody": f"fail-{i}"} for i in range(5)],
    )
    poller = make_poller(function, queue, moto_server, batch_size=2)
    try:
        run_until(poller, lambda: poller.stats.deleted >= 5)
    finally:
        function.close()
    stats = poller.stats
    assert stats.records == 5 and stats.batches >= 3  # batches of at most 2
    assert messages_left(sqs, queue[0]) == 0
