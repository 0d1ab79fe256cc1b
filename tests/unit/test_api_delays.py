"""Delayed jobs over the API: the fields, their 422s, scheduled jobs listed and cancelled,
batch items each with their own time. FastAPI's test client over moto's in-process mock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from taskq.api import create_app
from taskq.wiring import Services
from taskq.wiring import services as services_dependency
from tests.unit.test_api import assert_problem

DAY = 86400


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    app = create_app()
    app.dependency_overrides[services_dependency] = lambda: services
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"delay_s": -1}, "delay_s"),
        ({"delay_s": 366 * DAY}, "delay_s"),
        ({"delay_s": 1.5}, "delay_s"),
        ({"delay_s": True}, "delay_s"),
        ({"delay_s": "10"}, "delay_s"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"run_at": "2027-01-01T09:00:00"}, "run_at"),  # no offset
        ({"run_at": 1_900_000_000}, "run_at"),  # a number is not RFC 3339
        ({"run_at": (datetime.now(UTC) + timedelta(days=400)).isoformat()}, "run_at"),
        ({"delay_s": 5, "run_at": "2027-01-01T09:00:00Z"}, "run_at"),
    ],
)
def test_a_bad_time_is_a_422_naming_its_field(
    api: TestClient, extra: dict[str, Any], field: str
) -> None:
    body = assert_problem(api.post("/jobs", json={"task": "echo", **extra}), 422)
    assert body["field"] == field, body


def test_a_delayed_job_reads_scheduled_lists_and_cancels(api: TestClient) -> None:
    job = api.post("/jobs", json={"task": "echo", "run_at": _soon(20 * 60)}).json()
    assert job["status"] == "scheduled" and job["run_at"] is not None
    listed = api.get("/jobs", params={"status": "scheduled"}).json()["items"]
    assert job["id"] in {j["id"] for j in listed}
    cancelled = api.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    events = api.get(f"/jobs/{job['id']}/events").json()["events"]
    assert [e["kind"] for e in events] == ["scheduled", "cancelled"]


def test_a_past_run_at_runs_now(api: TestClient) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    job = api.post("/jobs", json={"task": "echo", "run_at": past.isoformat()}).json()
    assert job["status"] == "pending"
    assert datetime.fromisoformat(job["run_at"]) == past  # kept as asked


def test_a_run_at_of_year_one_runs_now_and_reads_as_now(api: TestClient) -> None:
    reply = api.post("/jobs", json={"task": "echo", "run_at": "0001-01-01T00:00:00+14:00"})
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert job["status"] == "pending"
    asked_at = datetime.fromisoformat(job["run_at"])
    assert abs((asked_at - datetime.now(UTC)).total_seconds()) < 60


def test_an_idempotent_delayed_submit_replays_with_the_same_delay_only(api: TestClient) -> None:
    body = {"task": "echo", "delay_s": 60}
    first = api.post("/jobs", json=body, headers={"Idempotency-Key": "later-1"})
    again = api.post("/jobs", json=body, headers={"Idempotency-Key": "later-1"})
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    other = api.post("/jobs", json={**body, "delay_s": 61}, headers={"Idempotency-Key": "later-1"})
    assert_problem(other, 409)


def test_batch_items_each_have_their_own_time(api: TestClient) -> None:
    items = [
        {"task": "echo", "delay_s": 30},
        {"task": "echo", "run_at": _soon(3 * DAY)},
        {"task": "echo", "run_at": _soon(400 * DAY)},  # too far: this item's own 422
        {"task": "echo"},
    ]
    reply = api.post("/jobs:batch", json={"jobs": items})
    assert reply.status_code == 202, reply.text
    results = reply.json()["items"]
    assert [r["status"] for r in results] == [202, 202, 422, 202]
    assert results[2]["problem"]["field"] == "run_at"
    assert [r["job"]["status"] for r in results if r["job"]] == [
        "scheduled",
        "scheduled",
        "pending",
    ]


def test_a_malformed_time_in_a_batch_names_its_item(api: TestClient) -> None:
    reply = api.post(
        "/jobs:batch", json={"jobs": [{"task": "echo"}, {"task": "echo", "delay_s": -5}]}
    )
    assert_problem(reply, 422)
    assert reply.json()["field"] == "jobs.1.delay_s"
