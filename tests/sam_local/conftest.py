"""Fixtures for the tests that run taskq's API in Lambda containers through `sam local`.

One stack for the session (infra.sam_api.SamLocalApi, what `make sam-api` runs): a Docker
network of its own, moto on loopback with a relay on the network's gateway, the worker on the
local poller, and `sam local start-api` on a free loopback port. Where no Docker engine
answers the tests skip with one line, except in CI (CI=true), where that is a failure: CI
starts its own engine for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra.docker_engine import engine_answers
from infra.emulator import free_port
from infra.sam_api import HOST_BUILD, SamLocalApi
from taskq.queue import JobQueue
from taskq.store import JobStore
from tests.integration.sam_cli import sam_path


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, but {reason}: CI must run the sam local tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sam_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamLocalApi]:
    sam = sam_path()
    if sam is None:
        _unavailable("aws-sam-cli is not installed (make test-sam installs it)")
    if not engine_answers():
        _unavailable("no Docker engine answers (start dockerd or Docker Desktop)")
    if not (HOST_BUILD / "template.yaml").exists():
        _unavailable(f"no host build in {HOST_BUILD} (make test-sam builds it)")
    api = SamLocalApi(
        port=free_port(), stage="samtest", sam=sam,  # type: ignore[arg-type]
        work_dir=tmp_path_factory.mktemp("sam-local"),
    )  # fmt: skip
    with api:
        yield api


class Direct:
    """The emulator as the test sees it, beside the API: the store and the queues."""

    def __init__(self, api: SamLocalApi) -> None:
        assert api.cloud is not None
        env = api.cloud.env
        session = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "testing"),
            region_name=api.cloud.region,
        )
        dynamodb: Any = session.client("dynamodb", endpoint_url=api.cloud.endpoint_url)
        self.sqs: Any = session.client("sqs", endpoint_url=api.cloud.endpoint_url)
        self.store = JobStore(env["TASKQ_TABLE"], dynamodb)
        self.queue = JobQueue(self.sqs, env["TASKQ_QUEUE_URL"], env["TASKQ_DLQ_URL"])


@pytest.fixture(scope="session")
def direct(sam_api: SamLocalApi) -> Direct:
    return Direct(sam_api)
