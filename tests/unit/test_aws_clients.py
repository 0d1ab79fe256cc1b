"""A process's AWS clients come from one botocore session: a second session read botocore's
endpoint data and service list again, ~170 ms of every cold start (measured)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest

from taskq import aws
from tests.unit.conftest import use_fake_aws_env


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    use_fake_aws_env(monkeypatch)
    made: list[Any] = []
    real = botocore.session.get_session

    def counted() -> Any:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(botocore.session, "get_session", counted)
    aws.forget_clients()
    yield made
    aws.forget_clients()


def test_clients_of_several_services_share_one_session(sessions: list[Any]) -> None:
    dynamodb = aws.client("dynamodb", "us-east-1", "http://127.0.0.1:9")
    sqs = aws.client("sqs", "us-east-1", "http://127.0.0.1:9")
    assert aws.client("dynamodb", "us-east-1", "http://127.0.0.1:9") is dynamodb
    assert dynamodb.meta.service_model.service_name == "dynamodb"
    assert sqs.meta.service_model.service_name == "sqs"
    assert len(sessions) == 1


def test_forgetting_the_clients_starts_a_new_session(sessions: list[Any]) -> None:
    first = aws.client("sqs", "us-east-1", "http://127.0.0.1:9")
    aws.forget_clients()
    second = aws.client("sqs", "us-east-1", "http://127.0.0.1:9")
    assert second is not first and len(sessions) == 2
