"""The emulator's faster Query gives the answers DynamoDB would: checked against the order
worked out here in Python, on an index and on a table's own key, paged both ways."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.moto_query import install
from tests.unit.conftest import use_fake_aws_env

REGION = "us-east-1"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_aws_env(monkeypatch)
    assert install(), "moto's internals changed: the emulator's Query runs unpatched"
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName="jobs",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "status", "AttributeType": "S"},
                {"AttributeName": "created", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "by_status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "created", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }],
        )  # fmt: skip
        client.create_table(
            TableName="lines",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "job_id", "AttributeType": "S"},
                {"AttributeName": "seq", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "job_id", "KeyType": "HASH"},
                {"AttributeName": "seq", "KeyType": "RANGE"},
            ],
        )  # fmt: skip
        yield client


def _pages(client: Any, args: dict[str, Any]) -> list[list[dict[str, Any]]]:
    pages = []
    while True:
        answer = client.query(**args)
        pages.append(answer["Items"])
        if "LastEvaluatedKey" not in answer:
            return pages
        args = {**args, "ExclusiveStartKey": answer["LastEvaluatedKey"]}


def test_install_marks_the_query_it_replaced() -> None:
    from moto.dynamodb.models.table import Table

    assert install() and install()  # idempotent
    assert getattr(Table.query, "taskq_fast", False)


@pytest.mark.parametrize("forward", [True, False])
def test_an_index_query_pages_in_index_order(ddb: Any, forward: bool) -> None:
    rng = random.Random(7)
    stored = []
    for n in rng.sample(range(500), 120):  # written out of order
        job = {"id": f"job-{n:03d}", "status": rng.choice(["running", "done"]),
               "created": f"2026-12-{n % 28 + 1:02d}#{n:03d}"}  # fmt: skip
        ddb.put_item(TableName="jobs", Item={k: {"S": v} for k, v in job.items()})
        stored.append(job)
    ddb.put_item(TableName="jobs", Item={"id": {"S": "no-status"}, "created": {"S": "x"}})
    expected = sorted(
        (j for j in stored if j["status"] == "running"),
        key=lambda j: j["created"], reverse=not forward,
    )  # fmt: skip
    pages = _pages(ddb, {
        "TableName": "jobs", "IndexName": "by_status", "Limit": 7,
        "KeyConditionExpression": "#s = :s", "ScanIndexForward": forward,
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "running"}},
    })  # fmt: skip
    assert all(len(page) <= 7 for page in pages) and len(pages) > 2
    got = [item["id"]["S"] for page in pages for item in page]
    assert got == [j["id"] for j in expected]


def test_a_query_on_the_tables_key_reads_that_key_only_in_range_order(ddb: Any) -> None:
    rng = random.Random(11)
    writes = [(job, seq) for job in ("a", "b", "c") for seq in range(40)]
    rng.shuffle(writes)
    for job, seq in writes:
        ddb.put_item(TableName="lines", Item={"job_id": {"S": job}, "seq": {"N": str(seq)}})
    pages = _pages(ddb, {
        "TableName": "lines", "Limit": 9,
        "KeyConditionExpression": "job_id = :j AND seq > :after",
        "ExpressionAttributeValues": {":j": {"S": "b"}, ":after": {"N": "12"}},
    })  # fmt: skip
    got = [(item["job_id"]["S"], int(item["seq"]["N"])) for page in pages for item in page]
    assert got == [("b", seq) for seq in range(13, 40)]
    missing = ddb.query(
        TableName="lines", KeyConditionExpression="job_id = :j",
        ExpressionAttributeValues={":j": {"S": "nobody"}},
    )  # fmt: skip
    assert missing["Items"] == [] and missing["Count"] == 0


def test_scan_keeps_its_own_order(ddb: Any) -> None:
    for n in (5, 3, 9, 1):
        ddb.put_item(TableName="jobs", Item={"id": {"S": f"j{n}"}, "created": {"S": "x"}})
    first = ddb.scan(TableName="jobs", Limit=2)
    rest = ddb.scan(TableName="jobs", ExclusiveStartKey=first["LastEvaluatedKey"])
    ids = [item["id"]["S"] for item in first["Items"] + rest["Items"]]
    assert sorted(ids) == ["j1", "j3", "j5", "j9"] and len(set(ids)) == 4
