"""API keys: hashed at rest, constant-time checks, revocation, and tenant isolation over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.provision import Resources
from taskq.api import create_app
from taskq.auth import Authenticator, KeyStore, bearer_key
from taskq.config import Settings
from taskq.errors import InvalidRequest, Unauthorized
from taskq.wiring import build, services
from tests.unit.conftest import FakeClock


@pytest.fixture
def keys(aws: Resources, dynamodb: Any) -> KeyStore:
    return KeyStore(aws.tables["ApiKeysTable"], dynamodb)


def test_a_key_is_shown_once_and_stored_only_as_a_hash(keys: KeyStore, dynamodb: Any) -> None:
    record, key = keys.create("acme", "ci")
    assert key.startswith(f"tq_{record.key_id}_")
    item = dynamodb.get_item(TableName=keys.table, Key={"key_id": {"S": record.key_id}})["Item"]
    assert key.split("_", 2)[2] not in str(item)
    assert item["secret_sha256"]["S"] != key


def test_authenticate_and_revoke(keys: KeyStore) -> None:
    clock = FakeClock(0)
    auth = Authenticator(keys, cache_ttl_s=30, clock=clock)
    record, key = keys.create("acme", "ci")
    assert auth.tenant_for(key) == "acme"
    assert keys.revoke(record.key_id)
    assert not keys.revoke(record.key_id)  # already revoked
    assert auth.tenant_for(key) == "acme"  # cached for at most cache_ttl_s
    clock.advance(31)
    with pytest.raises(Unauthorized):
        auth.tenant_for(key)
    assert [k.revoked_at is not None for k in keys.list("acme")] == [True]


@pytest.mark.parametrize(
    "presented",
    [None, "", "tq_", "Bearer x", "tq_0123456789abcdef_" + "A" * 43, "x" * 5000, "tq_ü"],
)
def test_bad_keys_are_refused(keys: KeyStore, presented: str | None) -> None:
    keys.create("acme", "ci")  # a real key exists; the presented ones are not it
    with pytest.raises(Unauthorized):
        Authenticator(keys).tenant_for(presented)


def test_a_right_key_id_with_a_wrong_secret_is_refused(keys: KeyStore) -> None:
    _, key = keys.create("acme", "ci")
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(Unauthorized):
        Authenticator(keys).tenant_for(forged)


@pytest.mark.parametrize("tenant", ["", "UPPER", "a#b", "-lead", "x" * 64])
def test_tenant_names_are_checked(keys: KeyStore, tenant: str) -> None:
    with pytest.raises(InvalidRequest):
        keys.create(tenant, "n")


def test_bearer_and_x_api_key_headers() -> None:
    assert bearer_key("Bearer abc", None) == "abc"
    assert bearer_key("bearer  abc ", None) == "abc"
    assert bearer_key("Basic abc", "k") is None  # a wrong scheme is not silently ignored
    assert bearer_key(None, "k") == "k"
    assert bearer_key(None, None) is None


# --- over HTTP ------------------------------------------------------------------------


@pytest.fixture
def secured(settings: Settings, aws: Resources) -> Iterator[tuple[TestClient, KeyStore]]:
    config = replace(settings, auth_required=True, keys_table=aws.tables["ApiKeysTable"])
    svc = build(config)
    app = create_app()
    app.dependency_overrides[services] = lambda: svc
    assert svc.auth is not None
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, svc.auth.keys


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_key_no_access(secured: tuple[TestClient, KeyStore]) -> None:
    client, _ = secured
    for method, path in [("POST", "/jobs"), ("GET", "/jobs?status=pending"),
                         ("GET", "/jobs/" + "a" * 32), ("GET", "/tasks")]:  # fmt: skip
        response = client.request(method, path, json={"task": "echo"})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/healthz").status_code == 200


def test_tenants_cannot_see_or_touch_each_others_jobs(
    secured: tuple[TestClient, KeyStore],
) -> None:
    client, keys = secured
    _, acme = keys.create("acme", "a")
    _, globex = keys.create("globex", "g")
    job = client.post("/jobs", json={"task": "echo"}, headers=as_(acme)).json()
    assert client.get(f"/jobs/{job['id']}", headers=as_(acme)).status_code == 200
    for method, path in [("GET", f"/jobs/{job['id']}"), ("GET", f"/jobs/{job['id']}/events"),
                         ("POST", f"/jobs/{job['id']}/cancel"),
                         ("POST", f"/jobs/{job['id']}/retry")]:  # fmt: skip
        response = client.request(method, path, headers={"X-Api-Key": globex})
        assert response.status_code == 404, path  # indistinguishable from a missing job
    listed = client.get("/jobs?status=pending", headers=as_(globex)).json()
    assert listed["items"] == []
    mine = client.get("/jobs?status=pending", headers=as_(acme)).json()
    assert [j["id"] for j in mine["items"]] == [job["id"]]


def test_idempotency_keys_are_scoped_per_tenant(secured: tuple[TestClient, KeyStore]) -> None:
    client, keys = secured
    _, acme = keys.create("acme", "a")
    _, globex = keys.create("globex", "g")
    body = {"task": "echo", "payload": {"n": 1}}
    a = client.post("/jobs", json=body, headers=as_(acme) | {"Idempotency-Key": "k1"}).json()
    g = client.post("/jobs", json=body, headers=as_(globex) | {"Idempotency-Key": "k1"}).json()
    assert a["id"] != g["id"]
    other = {"task": "echo", "payload": {"n": 2}}  # would 409 if the key were shared
    response = client.post("/jobs", json=other, headers=as_(globex) | {"Idempotency-Key": "k2"})
    assert response.status_code == 202


def test_revoked_and_forged_keys_are_refused(secured: tuple[TestClient, KeyStore]) -> None:
    client, keys = secured
    record, key = keys.create("acme", "a")
    keys.revoke(record.key_id)
    assert client.get("/tasks", headers=as_(key)).status_code == 401  # not cached yet: refused
    assert client.get("/tasks", headers=as_("tq_" + "0" * 16 + "_" + "x" * 43)).status_code == 401
    assert client.get("/tasks", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status_code == 401
