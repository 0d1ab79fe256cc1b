"""infra.local_cloud end to end on a toy stack: API -> queue -> worker -> table, and schedules."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.clients import client
from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from infra.provision import teardown

pytestmark = pytest.mark.integration

TOY_TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "template.yaml"


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status, resp.read()


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_toy_stack(moto_server: MotoServer, stage: str) -> None:
    cloud = LocalCloud(
        TOY_TEMPLATE, endpoint_url=moto_server.url, stage=stage, schedule_override_s=0.3
    )
    with cloud:
        ddb = client("dynamodb", endpoint_url=moto_server.url, region=cloud.region)
        table = cloud.resources.tables["Table"]
        assert table == f"toy-{stage}-items"

        status, body = http("GET", f"{cloud.api_url}/env")
        assert status == 200
        reply = json.loads(body)
        env = reply["env"]
        assert env["TOY_TABLE"] == table
        assert env["TOY_QUEUE_URL"] == cloud.resources.queue_urls["Queue"]
        assert env["TOY_QUEUE_ARN"] == cloud.resources.queue_arns["Queue"]
        assert env["TOY_WHERE"] == f"{stage}@us-east-1"
        assert env["AWS_ENDPOINT_URL"] == moto_server.url
        assert cloud.env["TOY_TABLE"] == table
        assert cloud.env["AWS_ENDPOINT_URL"] == moto_server.url

        assert http("POST", f"{cloud.api_url}/items", b"job-1") == (202, b"queued")
        item = eventually(
            lambda: ddb.get_item(TableName=table, Key={"id": {"S": "job-1"}}).get("Item")
        )
        assert item["source"]["S"] == cloud.resources.queue_arns["Queue"]
        eventually(lambda: cloud.pollers["WorkerFunction"].stats.deleted >= 1)

        def ticks() -> list[dict[str, Any]]:
            items = ddb.scan(TableName=table)["Items"]
            return [i for i in items if i["id"]["S"].startswith("tick-")]

        assert eventually(ticks)[0]["detail_type"]["S"] == "Scheduled Event"
    assert not alive(reply["pid"]), "sandbox left running after stop()"
    assert cloud.stack is not None
    teardown(cloud.stack, endpoint_url=moto_server.url)
