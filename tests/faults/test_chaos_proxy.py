"""The chaos proxy answers like AWS does when it fails, so botocore handles its faults as it
handles AWS's: throttling and 5xx retried and parsed with the right error code, dropped
connections retried, a call failed on every attempt given up on."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from infra.chaos_proxy import Call, ChaosProxy, FaultRates, Respond
from infra.emulator import MotoServer

pytestmark = pytest.mark.integration

JOB_ID = "a" * 32


@pytest.fixture
def proxy(fault_emulator: MotoServer) -> Iterator[ChaosProxy]:
    with ChaosProxy(fault_emulator.url, seed=7) as running:
        yield running


def clients(proxy: ChaosProxy, attempts: int) -> tuple[Any, Any, str, str]:
    config = Config(retries={"mode": "standard", "max_attempts": attempts})
    make: Any = boto3.client
    args = {
        "endpoint_url": proxy.url, "region_name": "us-east-1", "config": config,
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
    }  # fmt: skip
    ddb, sqs = make("dynamodb", **args), make("sqs", **args)
    table = f"chaos-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )  # fmt: skip
    queue = sqs.create_queue(QueueName=table)["QueueUrl"]
    return ddb, sqs, table, queue


@pytest.mark.parametrize(
    ("rates", "dynamodb_code", "sqs_code", "status"),
    [
        (FaultRates(throttle=1), "ThrottlingException", "RequestThrottled", 400),
        (FaultRates(error_500=1), "InternalServerError", "InternalError", 500),
        (FaultRates(error_503=1), "ServiceUnavailable", "ServiceUnavailable", 503),
    ],
)
def test_errors_come_in_each_protocols_own_shape(
    proxy: ChaosProxy, rates: FaultRates, dynamodb_code: str, sqs_code: str, status: int
) -> None:
    ddb, sqs, table, queue = clients(proxy, attempts=1)
    proxy.rates, proxy.enabled = rates, True
    with pytest.raises(ClientError) as info:
        ddb.put_item(TableName=table, Item={"id": {"S": JOB_ID}})
    assert info.value.response["Error"]["Code"] == dynamodb_code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=queue, MessageBody="{}")
    assert info.value.response["Error"]["Code"] == sqs_code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_a_dropped_response_hides_a_write_that_happened(proxy: ChaosProxy) -> None:
    ddb, _, table, _ = clients(proxy, attempts=1)
    proxy.rates, proxy.enabled = FaultRates(drop_after=1), True
    with pytest.raises(ConnectionClosedError):
        ddb.put_item(TableName=table, Item={"id": {"S": JOB_ID}})
    proxy.enabled = False
    assert "Item" in ddb.get_item(TableName=table, Key={"id": {"S": JOB_ID}})
    assert proxy.faults_by_job()[JOB_ID][0][1:] == ("dynamodb PutItem", "drop-after")


def test_retries_ride_over_faults_and_persistent_ones_are_given_up_on(proxy: ChaosProxy) -> None:
    ddb, sqs, table, queue = clients(proxy, attempts=5)
    proxy.rates = FaultRates(throttle=0.05, error_500=0.05, error_503=0.05, drop_before=0.05)
    proxy.enabled = True
    for n in range(30):
        ddb.put_item(TableName=table, Item={"id": {"S": f"{n:032x}"}})
        sqs.send_message(QueueUrl=queue, MessageBody=str(n))
    stats = proxy.stats
    assert sum(stats.faults.values()) > 0 and stats.gave_up == 0
    proxy.rates = FaultRates(persistent=1)
    with pytest.raises(ClientError) as info:
        ddb.get_item(TableName=table, Key={"id": {"S": JOB_ID}})
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert proxy.stats.faults["persistent"] >= 5 and proxy.stats.gave_up == 1


def test_hooks_take_calls_over_before_random_faults(proxy: ChaosProxy) -> None:
    _, sqs, _, queue = clients(proxy, attempts=1)
    seen: list[Call] = []

    def hook(call: Call) -> Respond | None:
        seen.append(call)
        if call.operation != "SendMessage":
            return None
        digest = hashlib.md5(call.json["MessageBody"].encode()).hexdigest()  # noqa: S324 - SQS's
        return Respond(200, json.dumps({"MessageId": "fake", "MD5OfMessageBody": digest}).encode())

    proxy.hooks.append(hook)
    proxy.rates, proxy.enabled = FaultRates(error_500=1), True
    body = f'{{"job_id": "{JOB_ID}", "task": "echo"}}'
    assert sqs.send_message(QueueUrl=queue, MessageBody=body)["MessageId"] == "fake"
    assert seen[-1].service == "sqs" and seen[-1].job_ids() == [JOB_ID]
    proxy.enabled = False
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
