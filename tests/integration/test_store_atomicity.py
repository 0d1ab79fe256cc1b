"""Racing conditional writes against the real moto server process: exactly one wins.

taskq's "never completed twice" rests on DynamoDB applying each conditional write to an
item atomically; the emulator must too (infra.emulator serialises its DynamoDB requests).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from pathlib import Path

import boto3
import pytest

from infra.emulator import MotoServer
from infra.provision import provision
from infra.template import Stack
from taskq.aws import CLIENT_CONFIG
from taskq.errors import InvalidTransition
from taskq.store import JobStore, NewJob

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_racing_claims_have_one_winner(moto_server: MotoServer) -> None:
    stack = Stack.from_file(
        ROOT / "template.yaml", parameters={"Stage": f"race{uuid.uuid4().hex[:6]}"}
    )
    table = provision(stack, endpoint_url=moto_server.url).tables["JobsTable"]
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing", config=CLIENT_CONFIG,
    )  # fmt: skip
    store = JobStore(table, dynamodb)
    racers = 6

    def claim(job_id: str, start: threading.Barrier, winners: list[int]) -> None:
        start.wait()
        with contextlib.suppress(InvalidTransition):
            winners.append(store.claim(job_id, lease_until=10**10).attempt)

    for _ in range(40):
        job_id = uuid.uuid4().hex
        store.create(NewJob(job_id, "echo", "{}", 3))
        winners: list[int] = []
        start = threading.Barrier(racers)
        threads = [
            threading.Thread(target=claim, args=(job_id, start, winners)) for _ in range(racers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert winners == [1], winners
