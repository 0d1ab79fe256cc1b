"""Unit fixtures: moto's in-process mock, with the table and queues made from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.provision import Resources, provision
from infra.template import Stack
from taskq.config import Settings
from taskq.queue import JobQueue
from taskq.store import JobStore
from taskq.tasks import load_tasks
from taskq.wiring import Services, build

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


class FakeClock:
    """A clock tests move by hand, so leases and TTLs expire on demand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        """A sleep that only moves the clock, and records how long it was asked for."""
        self.slept.append(seconds)
        self.now += seconds


def use_fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and region for moto's in-process mock, and no endpoint override."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    use_fake_aws_env(monkeypatch)
    with mock_aws():
        stack = Stack.from_file(ROOT / "template.yaml", parameters={"Stage": "unit"})
        yield provision(stack, endpoint_url=None, region=REGION)


@pytest.fixture
def settings(aws: Resources) -> Settings:
    return Settings(
        table_name=aws.tables["JobsTable"],
        queue_url=aws.queue_urls["JobQueue"],
        dlq_url=aws.queue_urls["DeadLetterQueue"],
        logs_table=aws.tables["JobLogsTable"],
        region=REGION,
        auth_required=False,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dynamodb(aws: Resources) -> Any:
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def sqs(aws: Resources) -> Any:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def store(settings: Settings, dynamodb: Any, clock: FakeClock) -> JobStore:
    return JobStore(settings.table_name, dynamodb, retention_days=14, clock=clock)


@pytest.fixture
def queue(settings: Settings, sqs: Any) -> JobQueue:
    return JobQueue(sqs, settings.queue_url, settings.dlq_url)


@pytest.fixture
def services(settings: Settings) -> Services:
    load_tasks(settings.task_modules)
    return build(settings)
