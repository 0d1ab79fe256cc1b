"""wiring.init: each function's init phase opens the clients it will use, and no others."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from taskq import aws, config, wiring
from tests.unit.conftest import use_fake_aws_env


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The botocore clients opened, by service, with settings for a stack."""
    use_fake_aws_env(monkeypatch)
    for name, value in {
        config.Env.TABLE: "jobs",
        config.Env.QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/1/jobs",
        config.Env.DLQ_URL: "https://sqs.us-east-1.amazonaws.com/1/dlq",
        config.Env.AUTH: "off",
    }.items():
        monkeypatch.setenv(name, value)
    services: list[str] = []
    real = aws.client

    def counting(service: str, *args: Any, **kwargs: Any) -> Any:
        services.append(service)
        return real(service, *args, **kwargs)

    monkeypatch.setattr(aws, "client", counting)
    config.settings.cache_clear()
    wiring.services.cache_clear()
    yield services
    config.settings.cache_clear()
    wiring.services.cache_clear()


def test_the_worker_init_opens_no_botocore_client(opened: list[str]) -> None:
    svc = wiring.init(sync_clients=False)
    assert opened == []  # its calls go through aioboto3, opened by the first batch
    assert "echo" in {task.name for task in svc.registry}  # the task modules, imported


def test_the_api_init_opens_its_two_clients_once(opened: list[str]) -> None:
    svc = wiring.init()
    assert sorted(opened) == ["dynamodb", "sqs"]
    assert svc.store is wiring.services().store and svc.queue is wiring.services().queue
    assert sorted(opened) == ["dynamodb", "sqs"]  # kept for the process's later requests
