"""Create (idempotently) and delete the stack's DynamoDB tables and SQS queues on an emulator.

Everything comes from template.yaml. Properties that matter locally are applied; a short
explicit list is knowingly ignored; anything else stops provisioning instead of being dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from infra.clients import client
from infra.template import QUEUE, TABLE, Stack, TemplateError

# No local effect (encryption, backups, tagging): ignored on purpose.
IGNORED = {
    TABLE: frozenset({"SSESpecification", "PointInTimeRecoverySpecification", "Tags"}),
    QUEUE: frozenset({"SqsManagedSseEnabled", "Tags"}),
}
_TABLE_CREATE_KEYS = (
    "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
    "BillingMode", "ProvisionedThroughput",
)  # fmt: skip
_TABLE_KEYS = frozenset({"TableName", "TimeToLiveSpecification", *_TABLE_CREATE_KEYS})
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
    "DelaySeconds", "MaximumMessageSize", "RedrivePolicy",
)  # fmt: skip
_QUEUE_KEYS = frozenset({"QueueName", *_QUEUE_ATTRIBUTES})
_QUEUE_EXISTS = {"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"}
_NO_QUEUE = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


@dataclass(frozen=True)
class Resources:
    """What provisioning created, by logical id: table names, queue URLs and ARNs."""

    tables: dict[str, str]
    queue_urls: dict[str, str]
    queue_arns: dict[str, str]


def provision(stack: Stack, *, endpoint_url: str | None, region: str | None = None) -> Resources:
    """Create every table and queue of the stack; existing ones are kept (and queues updated)."""
    region = region or stack.region
    ddb = client("dynamodb", endpoint_url=endpoint_url, region=region)
    sqs = client("sqs", endpoint_url=endpoint_url, region=region)
    tables = {lid: _create_table(ddb, stack, lid) for lid in stack.logical_ids(TABLE)}
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    for lid in _queue_order(stack):
        # Bind what exists so far: a RedrivePolicy names its DLQ by the ARN the emulator gave.
        urls[lid], arns[lid] = _create_queue(sqs, stack.bind(urls, arns), lid)
    return Resources(tables=tables, queue_urls=urls, queue_arns=arns)


def teardown(stack: Stack, *, endpoint_url: str | None, region: str | None = None) -> None:
    """Delete the stack's tables and queues; missing ones are fine."""
    region = region or stack.region
    ddb = client("dynamodb", endpoint_url=endpoint_url, region=region)
    sqs = client("sqs", endpoint_url=endpoint_url, region=region)
    for lid in stack.logical_ids(TABLE):
        try:
            ddb.delete_table(TableName=stack.table_name(lid))
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
    for lid in stack.logical_ids(QUEUE):
        try:
            url = sqs.get_queue_url(QueueName=stack.queue_name(lid))["QueueUrl"]
            sqs.delete_queue(QueueUrl=url)
        except ClientError as exc:
            if _code(exc) not in _NO_QUEUE:
                raise


def _create_table(ddb: Any, stack: Stack, lid: str) -> str:
    props = _checked(stack, lid, TABLE, _TABLE_KEYS)
    name = stack.table_name(lid)
    args = {k: stack.resolve_tree(props[k], f"{lid}.{k}") for k in _TABLE_CREATE_KEYS if k in props}
    try:
        ddb.create_table(TableName=name, **args)
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
    ddb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    ttl = stack.resolve_tree(props.get("TimeToLiveSpecification"), f"{lid}.TimeToLiveSpecification")
    if ttl and ttl.get("Enabled") in (True, "true"):
        current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        wanted = ttl["AttributeName"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or (
            current.get("AttributeName") != wanted
        ):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": wanted, "Enabled": True},
            )
    return name


def _create_queue(sqs: Any, stack: Stack, lid: str) -> tuple[str, str]:
    props = _checked(stack, lid, QUEUE, _QUEUE_KEYS)
    name = stack.queue_name(lid)
    attributes: dict[str, str] = {}
    for key in _QUEUE_ATTRIBUTES:
        if key not in props:
            continue
        value = stack.resolve_tree(props[key], f"{lid}.{key}")
        if key == "RedrivePolicy":
            value = json.dumps(value)
        attributes[key] = str(value)
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:
        if _code(exc) not in _QUEUE_EXISTS:
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        if attributes:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def _queue_order(stack: Stack) -> list[str]:
    """Queues ordered so each dead-letter queue comes before the queues that name it."""
    needs: dict[str, set[str]] = {}
    for lid in stack.logical_ids(QUEUE):
        dlq = stack.dead_letter_queue(lid)
        needs[lid] = {dlq} if dlq else set()
    order: list[str] = []
    while needs:
        ready = [lid for lid, deps in needs.items() if deps <= set(order)]
        if not ready:
            raise TemplateError(f"RedrivePolicy: dead-letter cycle among {', '.join(needs)}")
        order += ready
        for lid in ready:
            del needs[lid]
    return order


def _checked(stack: Stack, lid: str, type_: str, known: frozenset[str]) -> dict[str, Any]:
    props = stack.properties(lid, type_)
    unknown = set(props) - known - IGNORED[type_]
    if unknown:
        raise TemplateError(f"{lid}: {', '.join(sorted(unknown))} not supported locally")
    return props


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
