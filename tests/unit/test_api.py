"""The FastAPI app in-process (moto's in-process mock behind it): routes and problem+json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from taskq.api import BODY_MAX_BYTES, create_app
from taskq.models import CURSOR_PATTERN, IDEMPOTENCY_KEY_PATTERN, TASK_NAME_PATTERN
from taskq.store.codec import CURSOR_MAX_CHARS
from taskq.wiring import Services, services


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app()
    app.dependency_overrides[services_dep()] = lambda: services
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def services_dep():  # type: ignore[no-untyped-def]
    return services


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body  # type: ignore[no-any-return]


def test_submit_returns_202_with_location(client: TestClient) -> None:
    response = client.post("/jobs", json={"task": "echo", "payload": {"message": "hi"}})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "pending" and job["attempts"] == 0 and job["max_attempts"] == 3
    read = client.get(response.headers["location"]).json()
    assert read["payload"] == {"message": "hi"}
    events = client.get(f"/jobs/{job['id']}/events").json()["events"]
    assert [e["kind"] for e in events] == ["pending"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "nope"}, "task"),
        ({"task": "sleep", "payload": {"seconds": "long"}}, "payload.seconds"),
        ({"task": "sleep", "payload": {}}, "payload.seconds"),
        ({"task": "echo", "payload": [1, 2]}, "body.payload"),
        ({"task": "echo", "max_attempts": 99}, "body.max_attempts"),
        ({"payload": {}}, "body.task"),
        ({"task": "echo", "surprise": 1}, "body.surprise"),
        ({"task": "../etc/passwd"}, "body.task"),
    ],
)
def test_invalid_jobs_get_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    problem = assert_problem(client.post("/jobs", json=body), 422)
    assert field in json.dumps(problem)


@pytest.mark.parametrize(
    "raw", [b"not json", b"", b"[]", b'{"task": "echo"', '{"task": "\u0000"}'.encode()]
)
def test_malformed_bodies_get_422(client: TestClient, raw: bytes) -> None:
    assert_problem(
        client.post("/jobs", content=raw, headers={"content-type": "application/json"}), 422
    )


def post_raw(client: TestClient, raw: bytes | str, path: str = "/jobs") -> Any:
    return client.post(path, content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize("depth", [5000, 100_000])
def test_deeply_nested_json_is_refused_cleanly(client: TestClient, depth: int) -> None:
    # Past json's recursion guard: a 422 about the body, not a 500 (nor FastAPI's 400).
    deep = '{"task": "echo", "payload": {"x": ' + "[" * depth + "]" * depth + "}}"
    problem = assert_problem(post_raw(client, deep), 422)
    assert problem["field"] == "body" and "deeply" in problem["detail"]


@pytest.mark.parametrize(
    ("constant", "value"),
    [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e999", "Infinity")],
)
def test_nan_and_infinity_are_refused_naming_the_field(
    client: TestClient, constant: str, value: str
) -> None:
    # Python's json reads these (1e999 overflows to inf); stored, they came back as null.
    raw = '{"task": "echo", "payload": {"x": {"y": [1, ' + constant + "]}}}"
    problem = assert_problem(post_raw(client, raw), 422)
    assert problem["field"] == "payload.x.y.1"
    assert value in problem["detail"] and "payload.x.y.1" in problem["detail"]


def test_nan_in_a_batch_is_that_items_422(client: TestClient) -> None:
    raw = '{"jobs": [{"task": "echo", "payload": {"x": {"y": NaN}}}, {"task": "echo"}]}'
    response = post_raw(client, raw, "/jobs:batch")
    assert response.status_code == 202, response.text
    first, second = response.json()["items"]
    assert (first["status"], second["status"]) == (422, 202)
    assert first["problem"]["field"] == "payload.x.y"
    assert "NaN" in first["problem"]["detail"]


def nested(levels: int) -> dict[str, Any]:
    """A payload `levels` deep, the payload itself being the first level."""
    payload: dict[str, Any] = {}
    inner = payload
    for _ in range(levels - 1):
        inner["a"] = {}
        inner = inner["a"]
    return payload


def test_payloads_nest_at_most_32_levels(client: TestClient) -> None:
    assert client.post("/jobs", json={"task": "echo", "payload": nested(32)}).status_code == 202
    too_deep = {"task": "echo", "payload": nested(33)}
    problem = assert_problem(client.post("/jobs", json=too_deep), 422)
    assert problem["field"] == "payload" + ".a" * 32
    assert "32 levels" in problem["detail"]
    batch = client.post("/jobs:batch", json={"jobs": [too_deep]})
    assert batch.status_code == 422
    assert batch.json()["items"][0]["problem"]["field"] == "payload" + ".a" * 32


@pytest.mark.parametrize(
    "raw",
    [b'{"task": "echo", "payload": {"x": "\xff\xfe"}}',
     '{"task": "echo"}'.encode("utf-16"), '{"task": "echo"}'.encode("utf-32"),
     b"\xc3\x28", b'{"task": "\xed\xa0\x80"}'],
)  # fmt: skip
def test_bodies_that_are_not_utf8_get_a_422_problem(client: TestClient, raw: bytes) -> None:
    problem = assert_problem(post_raw(client, raw), 422)
    assert problem["field"] == "body" and "UTF-8" in problem["detail"]


def test_a_byte_order_mark_is_tolerated(client: TestClient) -> None:
    assert post_raw(client, b'\xef\xbb\xbf{"task": "echo"}').status_code == 202


@pytest.mark.parametrize(
    ("raw", "key"),
    [('{"task": "echo", "payload": {}, "task": "sleep"}', "task"),
     ('{"task": "echo", "payload": {"a": 1, "b": {"c": 1, "c": 2}}}', "c"),
     ('{"jobs": [{"task": "echo", "payload": {"k": 1, "k": 1}}]}', "k")],
)  # fmt: skip
def test_duplicate_keys_are_refused_naming_the_key(client: TestClient, raw: str, key: str) -> None:
    # Last-wins would let a proxy or log reader see one task while the API runs another.
    path = "/jobs:batch" if raw.startswith('{"jobs"') else "/jobs"
    problem = assert_problem(post_raw(client, raw, path), 422)
    assert problem["field"] == "body" and repr(key) in problem["detail"]


def test_an_integer_longer_than_python_converts_is_a_422(client: TestClient) -> None:
    raw = '{"task": "echo", "payload": {"x": ' + "9" * 5000 + "}}"
    assert assert_problem(post_raw(client, raw), 422)["field"] == "body"


def test_oversized_bodies_and_payloads_get_413(client: TestClient) -> None:
    big = {"task": "echo", "payload": {"blob": "x" * (BODY_MAX_BYTES + 1)}}
    assert_problem(client.post("/jobs", json=big), 413)
    payload_over_limit = {"task": "echo", "payload": {"blob": "x" * (260 * 1024)}}
    assert_problem(client.post("/jobs", json=payload_over_limit), 413)


def test_idempotency_key(client: TestClient) -> None:
    body = {"task": "echo", "payload": {"n": 1}}
    first = client.post("/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    again = client.post("/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post(
        "/jobs", json={"task": "echo", "payload": {"n": 2}}, headers={"Idempotency-Key": "order-42"}
    )
    assert_problem(other, 409)
    assert client.post("/jobs", json=body).json()["id"] != first.json()["id"]


@pytest.mark.parametrize("key", ["", "has space", "ü".encode(), "x" * 129, "semi;colon"])
def test_invalid_idempotency_keys(client: TestClient, key: str | bytes) -> None:
    response = client.post("/jobs", json={"task": "echo"}, headers={"Idempotency-Key": key})
    assert_problem(response, 422)


@pytest.mark.parametrize("job_id", ["abc", "0" * 33, "G" * 32, "../../x"])
def test_invalid_job_ids(client: TestClient, job_id: str) -> None:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code in (404, 422)
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_job_is_404(client: TestClient) -> None:
    assert_problem(client.get("/jobs/" + "a" * 32), 404)
    assert_problem(client.get("/jobs/" + "a" * 32 + "/events"), 404)
    assert_problem(client.post("/jobs/" + "a" * 32 + "/cancel"), 404)


def test_cancel(client: TestClient) -> None:
    job = client.post("/jobs", json={"task": "echo"}).json()
    cancelled = client.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    problem = assert_problem(client.post(f"/jobs/{job['id']}/cancel"), 409)
    assert "cancelled" in problem["detail"]


def test_listing_pages(client: TestClient) -> None:
    ids = {client.post("/jobs", json={"task": "fail", "payload": {"times": 0}}).json()["id"]
           for _ in range(5)}  # fmt: skip
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"task": "fail", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/jobs", params=params).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(seen) == ids and len(seen) == len(ids)


@pytest.mark.parametrize(
    "params",
    [{"task": ""}, {"task": "a b"}, {"status": "bogus"}, {"status": "pending", "limit": 0},
     {"status": "pending", "limit": 101},
     {"status": "pending", "cursor": "garbage"}, {"status": "pending", "cursor": ""},
     {"status": "pending", "cursor": "not/base64="}, {"status": "pending", "cursor": "A" * 1025},
     {"cursor": "abc"}],
)  # fmt: skip
def test_listing_rejects_bad_queries(client: TestClient, params: dict) -> None:
    assert_problem(client.get("/jobs", params=params), 422)


def test_tasks_and_health(client: TestClient) -> None:
    tasks = {t["name"]: t for t in client.get("/tasks").json()}
    assert {"echo", "sleep", "fail"} <= set(tasks)
    assert tasks["sleep"]["payload_schema"]["required"] == ["seconds"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/openapi.json").json()["info"]["title"] == "taskq"


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/nope"), 404)
    assert_problem(client.delete("/jobs"), 405)
    for method in ("TRACE", "OPTIONS", "FROBNICATE"):
        response = client.request(method, "/jobs")
        assert_problem(response, 405)
        # Allow names what the schema documents for the path: /jobs is two routes.
        assert response.headers["allow"] == "GET, POST"
    assert client.request("PATCH", "/jobs/" + "0" * 32).headers["allow"] == "GET"


def test_listing_without_a_filter_is_the_newest_page(client: TestClient) -> None:
    ids = [client.post("/jobs", json={"task": "echo"}).json()["id"] for _ in range(3)]
    page = client.get("/jobs", params={"limit": 2}).json()
    assert [job["id"] for job in page["items"]] == ids[::-1][:2]
    assert page["next_cursor"] is None  # one Query per status: no cursor continues it


def test_batch_submit_reports_each_item(client: TestClient, services: Services) -> None:
    jobs = [
        {"task": "echo", "payload": {"i": 1}},
        {"task": "nope"},
        {"task": "sleep", "payload": {"seconds": -1}},
        {"task": "echo", "payload": {"i": 2}, "idempotency_key": "batch-1"},
        {"task": "echo", "payload": {"i": 3}, "idempotency_key": "batch-1"},
    ]
    response = client.post("/jobs:batch", json={"jobs": jobs})
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    statuses = [item["status"] for item in body["items"]]
    assert statuses == [202, 422, 422, 202, 409]
    assert body["items"][2]["problem"]["field"] == "payload.seconds"
    accepted = [item["job"]["id"] for item in body["items"] if item["job"]]
    assert all(client.get(f"/jobs/{job_id}").status_code == 200 for job_id in accepted)
    depth = services.queue.depth()
    assert depth["visible"] + depth["in_flight"] == 2  # one message per accepted job


@pytest.mark.parametrize(
    "body", [{"jobs": []}, {"jobs": [{"task": "echo"}] * 101}, {"jobs": "x"}, {}]
)
def test_batch_limits(client: TestClient, body: dict) -> None:
    assert_problem(client.post("/jobs:batch", json=body), 422)


def test_batch_with_nothing_accepted_is_422(client: TestClient) -> None:
    response = client.post("/jobs:batch", json={"jobs": [{"task": "nope"}]})
    assert response.status_code == 422
    assert response.json()["items"][0]["status"] == 422


def test_retry_a_failed_job(client: TestClient, services: Services) -> None:
    job_id = client.post("/jobs", json={"task": "echo"}).json()["id"]
    assert_problem(client.post(f"/jobs/{job_id}/retry"), 409)  # only failed jobs
    services.store.claim(job_id, lease_until=10**10)
    services.store.fail(job_id, 1, "PermanentError: no")
    retried = client.post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 200
    assert retried.json()["status"] == "pending" and retried.json()["attempts"] == 0


def test_the_schema_states_the_rules_the_api_enforces(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    submit = schema["paths"]["/jobs"]["post"]
    (key,) = [p for p in submit["parameters"] if p["name"] == "Idempotency-Key"]
    assert {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN} in key["schema"]["anyOf"]
    listing = {p["name"]: p["schema"] for p in schema["paths"]["/jobs"]["get"]["parameters"]}
    (cursor,) = [s for s in listing["cursor"]["anyOf"] if s.get("type") == "string"]
    assert cursor == {"type": "string", "minLength": 1, "maxLength": CURSOR_MAX_CHARS,
                      "pattern": CURSOR_PATTERN}  # fmt: skip
    assert {"type": "string", "pattern": TASK_NAME_PATTERN} in listing["task"]["anyOf"]
    for model in ("JobRequest", "BatchItem"):
        task = schema["components"]["schemas"][model]["properties"]["task"]
        assert task["pattern"] == TASK_NAME_PATTERN
    assert "Problem" in schema["components"]["schemas"]


def statuses(schema: dict[str, Any], path: str, method: str) -> set[int]:
    return {int(status) for status in schema["paths"][path][method]["responses"]}


def test_the_schema_documents_every_status_each_route_answers(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    every, keyed = {413, 500}, {401, 503}
    assert statuses(schema, "/jobs", "post") == every | keyed | {202, 409, 415, 422}
    assert statuses(schema, "/jobs:batch", "post") == every | keyed | {202, 409, 415, 422}
    assert statuses(schema, "/jobs", "get") == every | keyed | {200, 422}
    assert statuses(schema, "/jobs/{job_id}", "get") == every | keyed | {200, 404, 422}
    assert statuses(schema, "/jobs/{job_id}/cancel", "post") == every | keyed | {200, 404, 409, 422}
    assert statuses(schema, "/tasks", "get") == every | keyed | {200}
    assert statuses(schema, "/healthz", "get") == every | {200}  # no key, no input
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    errors = [
        (status, response["content"])
        for operations in schema["paths"].values()
        for operation in operations.values()
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]
    for status, content in errors:
        # Every error is a problem; a batch that accepted nothing may also be the batch.
        assert content.get("application/problem+json") == problem or status == "409", content


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_without_the_json_content_type_gets_415(
    client: TestClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/jobs", content=b'{"task": "echo"}', headers=headers)
    problem = assert_problem(response, 415)
    assert "application/json" in problem["detail"]


def test_a_json_subtype_body_is_read_as_json(client: TestClient) -> None:
    # application/*+json is JSON to FastAPI and to the strict parser; an invalid one is a 422.
    headers = {"content-type": "application/vnd.taskq+json; charset=utf-8"}
    assert client.post("/jobs", content=b'{"task": "echo"}', headers=headers).status_code == 202
    problem = assert_problem(client.post("/jobs", content=b'{"task": 5}', headers=headers), 422)
    assert problem["field"] == "task"
