"""infra.provision against a real moto server: resources exist exactly as template.yaml says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from infra.clients import client
from infra.emulator import MotoServer
from infra.provision import provision, teardown
from infra.template import QUEUE, TABLE, Stack

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_provision_matches_template(moto_server: MotoServer, stage: str) -> None:
    stack = Stack.from_file(TEMPLATE, parameters={"Stage": stage})
    ddb = client("dynamodb", endpoint_url=moto_server.url, region=stack.region)
    sqs = client("sqs", endpoint_url=moto_server.url, region=stack.region)
    resources = provision(stack, endpoint_url=moto_server.url)
    try:
        assert provision(stack, endpoint_url=moto_server.url) == resources  # idempotent
        for table in stack.logical_ids(TABLE):
            want = stack.resolve_tree(stack.properties(table, TABLE), table)
            name = resources.tables[table]
            desc = ddb.describe_table(TableName=name)["Table"]
            assert desc["KeySchema"] == want["KeySchema"]
            assert desc["BillingModeSummary"]["BillingMode"] == want["BillingMode"]
            got = {i["IndexName"]: i["KeySchema"] for i in desc.get("GlobalSecondaryIndexes", [])}
            indexes = want.get("GlobalSecondaryIndexes", [])
            assert got == {i["IndexName"]: i["KeySchema"] for i in indexes}
            ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if "TimeToLiveSpecification" in want:
                assert ttl == {
                    "TimeToLiveStatus": "ENABLED",
                    "AttributeName": want["TimeToLiveSpecification"]["AttributeName"],
                }
            else:
                assert ttl["TimeToLiveStatus"] == "DISABLED"
        assert any(
            "TimeToLiveSpecification" in stack.properties(t, TABLE)
            for t in stack.logical_ids(TABLE)
        )
        for lid in stack.logical_ids(QUEUE):
            want = stack.resolve_tree(stack.properties(lid, QUEUE), lid)
            url = resources.queue_urls[lid]
            assert url.startswith(moto_server.url)
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            assert attrs["QueueArn"] == resources.queue_arns[lid]
            for key in (
                "VisibilityTimeout",
                "MessageRetentionPeriod",
                "ReceiveMessageWaitTimeSeconds",
            ):
                if key in want:
                    assert attrs[key] == str(want[key]), key
            dlq = stack.dead_letter_queue(lid)
            if dlq is not None:
                redrive = json.loads(attrs["RedrivePolicy"])
                assert redrive["deadLetterTargetArn"] == resources.queue_arns[dlq]
                assert int(redrive["maxReceiveCount"]) == want["RedrivePolicy"]["maxReceiveCount"]
        assert any(stack.dead_letter_queue(q) for q in stack.logical_ids(QUEUE))
    finally:
        teardown(stack, endpoint_url=moto_server.url)
    for name in resources.tables.values():
        with pytest.raises(ClientError):
            ddb.describe_table(TableName=name)
    names = sqs.list_queues(QueueNamePrefix=f"taskq-{stage}").get("QueueUrls", [])
    assert names == []
    teardown(stack, endpoint_url=moto_server.url)  # missing resources are fine
