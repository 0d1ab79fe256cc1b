"""API keys and tenant isolation through the real gateway and API Lambda (AuthMode=required)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from taskq.auth import KeyStore
from tests.integration.http import call, wait_for_status

pytestmark = pytest.mark.integration
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def cloud(moto_server: MotoServer) -> Iterator[LocalCloud]:
    with LocalCloud(
        TEMPLATE, endpoint_url=moto_server.url, stage=f"sec{uuid.uuid4().hex[:8]}",
        start_scheduler=False, parameters={"AuthMode": "required"},
    ) as running:  # fmt: skip
        yield running


@pytest.fixture(scope="module")
def keys(cloud: LocalCloud) -> KeyStore:
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=cloud.endpoint_url, region_name=cloud.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    return KeyStore(cloud.env["TASKQ_KEYS_TABLE"], dynamodb)


def test_keys_gate_the_api_and_tenants_stay_apart(cloud: LocalCloud, keys: KeyStore) -> None:
    _, acme = keys.create("acme", "integration")
    _, globex = keys.create("globex", "integration")
    body = {"task": "echo", "payload": {"secret": "acme's"}}

    anonymous = call("POST", f"{cloud.api_url}/jobs", body)
    assert anonymous.status == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "secret" not in anonymous.body.decode()

    submitted = call("POST", f"{cloud.api_url}/jobs", body, headers={"X-Api-Key": acme})
    assert submitted.status == 202
    job_id = submitted.json()["id"]
    done = wait_for_status(cloud.api_url, job_id, {"completed"}, headers={"X-Api-Key": acme})
    assert done["result"] == {"secret": "acme's"}

    as_globex = {"Authorization": f"Bearer {globex}"}
    assert call("GET", f"{cloud.api_url}/jobs/{job_id}", headers=as_globex).status == 404
    logs = f"{cloud.api_url}/jobs/{job_id}/logs"
    assert call("GET", logs, headers=as_globex).status == 404  # not "forbidden": not there
    assert call("GET", logs, headers={"X-Api-Key": acme}).status == 200
    assert call("GET", logs).status == 401
    listing = call("GET", f"{cloud.api_url}/jobs?status=completed", headers=as_globex).json()
    assert all(item["id"] != job_id for item in listing["items"])

    revoked_record, revoked = keys.create("initech", "integration")
    keys.revoke(revoked_record.key_id)
    assert call("GET", f"{cloud.api_url}/tasks", headers={"X-Api-Key": revoked}).status == 401
    forged = "tq_" + "0" * 16 + "_" + "A" * 43
    assert call("GET", f"{cloud.api_url}/tasks", headers={"X-Api-Key": forged}).status == 401
    assert call("GET", f"{cloud.api_url}/healthz").status == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("TRACE", "/jobs", {"GET", "POST"}), ("FROBNICATE", "/healthz", {"GET"}),
     ("DELETE", "/jobs/" + "0" * 32, {"GET"})],
)  # fmt: skip
def test_any_method_through_the_gateway_is_the_apps_405(
    cloud: LocalCloud, method: str, path: str, allowed: set[str]
) -> None:
    # No key, and still a 405: the method is refused before anything is looked up (and a
    # TRACE echoes nothing back). The gateway passes every method on, as API Gateway's ANY
    # route does; the answer is the app's problem+json, not the gateway's 501 HTML page.
    reply = call(method, cloud.api_url + path)
    assert reply.status == 405, (reply.status, reply.body[:200])
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["status"] == 405
    assert {m.strip() for m in reply.headers["allow"].split(",")} == allowed
