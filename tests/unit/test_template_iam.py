"""Least privilege: each function's role allows exactly the AWS calls its handler makes.

The handlers run in this process on moto's mock, through every path they have (submit,
batch, replay, read, list, cancel, retry; run, retry, fail, malformed, duplicate; sweep),
while every AWS call is recorded as the IAM action and resource it needs. Then, for each
function: what it called must be allowed (or it fails on AWS with AccessDenied), and what
is allowed must have been called, apart from what Lambda itself does with the role (logs,
X-Ray, polling the SQS event source). A new call in the library fails here first; so does
a permission nothing uses any more.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from moto import mock_aws

import taskq.aio
import taskq.aws
from infra.provision import Resources, provision
from infra.template import FUNCTION, TABLE, Stack, load_template
from taskq.auth import KeyStore
from taskq.models import Priority
from taskq.scheduling.state import ScheduleState, ScheduleStates
from taskq.store import JobStore, NewJob
from tests.lambda_harness import (
    TEMPLATE,
    Lambdas,
    decoded_body,
    http_v2,
    reset_process_caches,
    sqs_records,
)
from tests.unit.conftest import use_fake_aws_env

REGION = "us-east-1"
SCHEDULED_TASKS = Path(__file__).resolve().parents[1] / "integration" / "layer"
Grant = tuple[str, str]  # (IAM action, logical id of the resource, or "*")

# What SQS and DynamoDB authorise a call by, when it is not the call's own name.
_SQS_ACTION = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_TRANSACT_ACTION = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


# --- what the template grants ----------------------------------------------------------


def _resource_id(value: Any) -> str:
    """A policy Resource as a logical id: !GetAtt X.Arn -> X, !Sub ${X.Arn}/index/* -> X/index/*."""
    if value == "*":
        return "*"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        name, attr = value["Fn::GetAtt"]
        assert attr == "Arn", value
        return str(name)
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        assert text.startswith("${") and ".Arn}" in text, value
        name, rest = text[2:].split(".Arn}", 1)
        return name + rest
    raise AssertionError(f"policy resource {value!r}: use !GetAtt X.Arn or !Sub ${{X.Arn}}/...")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(doc: dict[str, Any], function: str) -> set[Grant]:
    props = doc["Resources"][function]["Properties"]
    assert "Policies" not in props, f"{function}: use its Role, not SAM policy templates"
    role_ref = props.get("Role", {}).get("Fn::GetAtt")
    assert role_ref and role_ref[1] == "Arn", f"{function}: Role must be !GetAtt <role>.Arn"
    role = doc["Resources"][role_ref[0]]
    assert role["Type"] == "AWS::IAM::Role"
    props = role["Properties"]
    assert not props.get("ManagedPolicyArns"), f"{role_ref[0]}: no managed policies"
    trust = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    grants: set[Grant] = set()
    for policy in props["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement
            for action in _listed(statement["Action"]):
                assert "*" not in action, f"{role_ref[0]}: wildcard action {action}"
                for resource in _listed(statement["Resource"]):
                    grants.add((action, _resource_id(resource)))
    return grants


def runtime_needs(doc: dict[str, Any], stack: Stack, function: str) -> set[Grant]:
    """What Lambda does with the function's role, not its code: logs, X-Ray, SQS polling."""
    name = stack.function_name(function)
    log_groups = [
        lid
        for lid, res in doc["Resources"].items()
        if res["Type"] == "AWS::Logs::LogGroup"
        and stack.resolve(res["Properties"]["LogGroupName"], lid) == f"/aws/lambda/{name}"
    ]
    assert len(log_groups) == 1, f"{function}: needs its own AWS::Logs::LogGroup"
    needs = {
        ("logs:CreateLogStream", log_groups[0]),
        ("logs:PutLogEvents", log_groups[0]),
        ("xray:PutTraceSegments", "*"),
        ("xray:PutTelemetryRecords", "*"),
    }
    for sqs in stack.sqs_events(function):
        needs |= {
            (f"sqs:{action}", sqs.queue)
            for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
        }
    return needs


# --- what the handlers call ------------------------------------------------------------


@dataclass
class Recorder:
    stack: Stack
    resources: Resources
    current: str | None = None
    used: dict[str, set[Grant]] = field(default_factory=dict)

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if self.current is None:
            return  # the test's own set-up and checks
        self.used.setdefault(self.current, set()).update(self.grants(service, operation, params))

    def grants(self, service: str, operation: str, params: dict[str, Any]) -> set[Grant]:
        if service == "sqs":
            urls = {url: lid for lid, url in self.resources.queue_urls.items()}
            return {(f"sqs:{_SQS_ACTION.get(operation, operation)}", urls[params["QueueUrl"]])}
        if service == "dynamodb":
            tables = {self.stack.table_name(lid): lid for lid in self.stack.logical_ids(TABLE)}
            if operation in ("BatchWriteItem", "BatchGetItem"):
                return {(f"dynamodb:{operation}", tables[t]) for t in params["RequestItems"]}
            if operation in ("TransactWriteItems", "TransactGetItems"):
                out = set()
                for item in params["TransactItems"]:
                    ((kind, body),) = item.items()
                    action = _TRANSACT_ACTION.get(kind, "GetItem")
                    out.add((f"dynamodb:{action}", tables[body["TableName"]]))
                return out
            table = tables[params["TableName"]]
            if params.get("IndexName"):
                table += "/index/*"
            return {(f"dynamodb:{operation}", table)}
        return {(f"{service}:{operation}", "?")}


@dataclass
class World:
    stack: Stack
    resources: Resources
    lambdas: Lambdas
    recorder: Recorder
    key: str

    def call(self, function: str, ev: dict[str, Any]) -> Any:
        self.recorder.current = function
        try:
            return self.lambdas.invoke(function, ev)
        finally:
            self.recorder.current = None

    def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        response = self.call("ApiFunction", http_v2(method, path, headers=headers, **kwargs))
        return response["statusCode"], decoded_body(response)

    def deliver(
        self, extra: list[dict[str, Any]] | None = None, queue: str = "JobQueue"
    ) -> dict[str, Any]:
        """Receive what is in a job queue and hand it to the worker, as its mapping would."""
        sqs = boto3.client("sqs", region_name=REGION)
        got = sqs.receive_message(QueueUrl=self.resources.queue_urls[queue], MaxNumberOfMessages=10)
        messages = got.get("Messages", []) + (extra or [])
        event = sqs_records(messages, self.resources.queue_arns[queue])
        result: dict[str, Any] = self.call("WorkerFunction", event)
        return result


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _world(monkeypatch)


def _world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    use_fake_aws_env(monkeypatch)
    with mock_aws():
        # A module with periodic schedules, so the clock's every path runs.
        monkeypatch.syspath_prepend(str(SCHEDULED_TASKS))
        params = {
            "Stage": "iam",
            "AuthMode": "required",
            "TaskModules": "taskq.demo_tasks,scheduled_tasks,capped_tasks,reporting_tasks",
        }
        resources = provision(Stack.from_file(TEMPLATE, parameters=params), endpoint_url=None)
        account = next(iter(resources.queue_arns.values())).split(":")[4]
        stack = Stack.from_file(TEMPLATE, parameters=params, account_id=account).bind(
            resources.queue_urls, resources.queue_arns
        )
        ddb = boto3.client("dynamodb", region_name=REGION)
        _, key = KeyStore(resources.tables["ApiKeysTable"], ddb).create("acme", "iam test")
        recorder = Recorder(stack, resources)
        original = BaseClient._make_api_call  # type: ignore[attr-defined]

        def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            recorder.record(client.meta.service_model.service_name, operation, params)
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", recording)
        # moto's in-process mock patches botocore, not aiobotocore: the worker's async
        # clients send the same operations through botocore here (the grants depend on
        # the operations, not on the transport).
        monkeypatch.setattr(taskq.aio, "AioClient", _BotocoreInThreads)
        try:
            yield World(stack, resources, Lambdas(stack, monkeypatch), recorder, key)
        finally:
            reset_process_caches()


class _BotocoreInThreads(taskq.aio.ThreadedClient):
    """AioClient's signature over a sync botocore client, so moto's mock sees the calls."""

    def __init__(self, service: str, region: str, endpoint_url: str | None = None) -> None:
        super().__init__(service, taskq.aws.client(service, region, endpoint_url))


def exercise(world: World) -> None:
    """Every path of every handler (each step checks its outcome, so none is skipped)."""
    assert world.api("GET", "/healthz")[0] == 200
    assert world.api("GET", "/tasks")[0] == 200
    echo = {"task": "echo", "payload": {"message": "hi"}}
    status, job = world.api("POST", "/jobs", body=echo, headers={"idempotency-key": "k1"})
    assert status == 202, job
    assert world.api("POST", "/jobs", body=echo, headers={"idempotency-key": "k1"})[0] == 202
    batch = {"jobs": [echo, {"task": "fail", "payload": {"times": 1}}]}
    assert world.api("POST", "/jobs:batch", body=batch)[0] == 202
    failing = {"task": "fail", "payload": {"times": 5}, "max_attempts": 1}
    status, doomed = world.api("POST", "/jobs", body=failing)
    assert status == 202
    status, cancelled = world.api("POST", "/jobs", body=echo)
    assert world.api("POST", f"/jobs/{cancelled['id']}/cancel")[0] == 200
    assert world.api("GET", f"/jobs/{job['id']}")[0] == 200
    assert world.api("GET", f"/jobs/{job['id']}/events")[0] == 200
    assert world.api("GET", "/jobs", query={"status": "pending"})[0] == 200
    assert world.api("GET", "/jobs", query={"task": "echo"})[0] == 200
    status, reporting = world.api("POST", "/jobs", body={"task": "report_steps", "payload": {}})
    assert status == 202, reporting

    malformed = {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": "not json",
        "MD5OfBody": "-",
    }
    result = world.deliver(extra=[malformed])  # completes, retries, fails, dead-letters
    assert len(result["batchItemFailures"]) == 1  # the `fail` job retrying
    assert world.api("GET", f"/jobs/{doomed['id']}")[1]["status"] == "failed"
    assert world.api("POST", f"/jobs/{doomed['id']}/retry")[0] == 200
    status, logs = world.api("GET", f"/jobs/{reporting['id']}/logs")
    assert status == 200 and len(logs["lines"]) == 4, logs
    world.deliver()  # the redriven job, and the cancelled job's message: acknowledged
    for priority, queue in (("high", "HighPriorityQueue"), ("low", "LowPriorityQueue")):
        flaky = {"task": "fail", "payload": {"times": 1}, "priority": priority}
        status, queued = world.api("POST", "/jobs", body=flaky)
        assert status == 202 and queued["priority"] == priority, queued
        retried = world.deliver(queue=queue)  # its retry's delay, on its own queue
        assert [f["itemIdentifier"] for f in retried["batchItemFailures"]], retried
    # Capped tasks: `capped`'s two slots held by others, so its jobs wait (each sent again
    # to its own queue); a keyed cap reads its job's payload, takes and gives back a slot.
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=world.resources.tables["JobsTable"],
        Item={
            "id": {"S": "cap:capped"},
            "version": {"N": "1"},
            "holders": {"M": {
                h: {"M": {"token": {"S": h}, "lease": {"N": str(time.time() + 600)}}}
                for h in ("x", "y")
            }},
        },
    )  # fmt: skip
    keyed = {"task": "per_customer", "payload": {"seconds": 0, "customer": "a"}}
    assert world.api("POST", "/jobs", body=keyed)[0] == 202
    for priority, queue in (("default", "JobQueue"), ("high", "HighPriorityQueue"),
                            ("low", "LowPriorityQueue")):  # fmt: skip
        body = {"task": "capped", "payload": {"seconds": 0}, "priority": priority}
        assert world.api("POST", "/jobs", body=body)[0] == 202
        assert world.deliver(queue=queue)["batchItemFailures"] == []  # waits: sent again

    old = JobStore(
        world.resources.tables["JobsTable"],
        boto3.client("dynamodb", region_name=REGION),
        clock=lambda: 1_000_000_000.0,  # a job stored long ago and never sent
    )
    old.create(NewJob("f" * 32, "echo", "{}", 3, None, "-", "acme"))
    for n, priority in enumerate((Priority.HIGH, Priority.LOW)):  # re-sent to their queues
        old.create(NewJob(f"{n}" * 32, "echo", "{}", 3, priority=priority))
    report = world.call(
        "SweeperFunction", {"source": "aws.events", "detail-type": "Scheduled Event"}
    )
    assert sum(report["requeued"].values()) >= 1, report
    exercise_clock(world, old_job="f" * 32)


def exercise_clock(world: World, old_job: str) -> None:
    """The clock: a delayed job woken, periodic fires created, a serial schedule's
    overlap check (its previous job read), and the schedules' state read and moved."""
    now = time.time()
    table = world.resources.tables["JobsTable"]
    ddb = boto3.client("dynamodb", region_name=REGION)
    for n, priority in enumerate(Priority):  # each woken on its own priority's queue
        JobStore(table, ddb).create(
            NewJob(f"e{n}" * 16, "echo", "{}", 3, run_at=now + 60, wakes_by_clock=True,
                   priority=priority)
        )  # fmt: skip
    ScheduleStates(table, ddb).advance(ScheduleState("serial_beat"), now - 90, old_job)
    tick = {"source": "aws.events", "detail-type": "Scheduled Event"}
    report = world.call("ClockFunction", tick)
    assert report["delayed"]["promoted"] == 3, report
    assert report["periodic"]["fired"] >= 3, report  # two beats ahead, the serial one caught up
    assert world.call("ClockFunction", tick)["periodic"]["fired"] == 0


@pytest.fixture(scope="module")
def exercised(world: World) -> World:
    exercise(world)
    return world


@pytest.mark.parametrize(
    "function", ["ApiFunction", "WorkerFunction", "SweeperFunction", "ClockFunction"]
)
def test_each_role_allows_exactly_what_its_function_does(exercised: World, function: str) -> None:
    doc = load_template(TEMPLATE)
    allowed = granted(doc, function)
    used = exercised.recorder.used.get(function, set())
    runtime = runtime_needs(doc, exercised.stack, function)
    assert used - allowed == set(), f"{function} calls these without permission (AccessDenied)"
    assert allowed - used - runtime == set(), f"{function} is allowed these but never uses them"
    assert runtime <= allowed, f"{function}'s role lacks what Lambda needs to run it"


def test_every_function_has_a_role_of_its_own() -> None:
    doc = load_template(TEMPLATE)
    stack = Stack(doc, root=Path(TEMPLATE).parent)
    roles = [
        doc["Resources"][f]["Properties"]["Role"]["Fn::GetAtt"][0]
        for f in stack.logical_ids(FUNCTION)
    ]
    assert len(set(roles)) == len(roles)
    assert "Policies" not in ((doc.get("Globals") or {}).get("Function") or {})


def test_only_x_ray_is_allowed_on_every_resource() -> None:
    doc = load_template(TEMPLATE)
    stack = Stack(doc, root=Path(TEMPLATE).parent)
    for function in stack.logical_ids(FUNCTION):
        wide = {action for action, resource in granted(doc, function) if resource == "*"}
        assert wide <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, function
