"""The dashboard's guard: host, token, Origin and CSRF checks, and escaping, through
Starlette's TestClient against moto's in-process mock (the browser tests do the rest)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from infra.provision import provision
from infra.template import Stack
from taskq.config import Settings
from taskq.dashboard import create_app
from taskq.dashboard.security import AUTH_COOKIE, SESSION_COOKIE, Guard, is_loopback
from taskq.models import JobRequest, Status
from taskq.wiring import Services, build
from tests.unit.conftest import REGION, ROOT

PORT = 8089
OWN = f"http://127.0.0.1:{PORT}"
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    """One mocked stack for the module (the checks need no fresh table; each test makes its
    own jobs), instead of provisioning one per test."""
    with pytest.MonkeyPatch.context() as env, mock_aws():
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        stack = Stack.from_file(ROOT / "template.yaml", parameters={"Stage": "unit"})
        made = provision(stack, endpoint_url=None, region=REGION)
        settings = Settings(
            table_name=made.tables["JobsTable"],
            queue_url=made.queue_urls["JobQueue"],
            dlq_url=made.queue_urls["DeadLetterQueue"],
            region=REGION,
            auth_required=False,
        )
        yield build(settings)


def client_for(services: Services, token: str | None = None) -> TestClient:
    app = create_app(services, actor="tester (taskq dashboard)", port=PORT, token=token)
    return TestClient(app, base_url=OWN, follow_redirects=False)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with client_for(services) as client:
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def pending_job(services: Services) -> str:
    return services.jobs.submit(JobRequest(task="echo", payload={"message": "hi"})).job.id


def test_a_page_sets_a_session_and_its_csrf_token(client: TestClient) -> None:
    page = client.get("/jobs")
    assert page.status_code == 200
    assert SESSION_COOKIE in page.cookies
    assert len(csrf_of(page.text)) == 64
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_a_change_with_token_and_origin_goes_through(
    client: TestClient, services: Services
) -> None:
    job_id = pending_job(services)
    csrf = csrf_of(client.get(f"/jobs/{job_id}").text)
    done = client.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf}, headers={"Origin": OWN})
    assert done.status_code == 303, done.text
    job = services.jobs.get(job_id)
    assert job.status == Status.CANCELLED
    assert job.events[-1].detail == "tester (taskq dashboard)"


@pytest.mark.parametrize(
    ("origin", "send_csrf", "why"),
    [
        ("http://evil.example", True, "another origin"),
        (None, True, "must come from the dashboard"),
        ("null", True, "must come from the dashboard"),
        (OWN, False, "token is missing"),
    ],
)
def test_a_replayed_or_forged_change_is_refused(
    client: TestClient, services: Services, origin: str | None, send_csrf: bool, why: str
) -> None:
    job_id = pending_job(services)
    csrf = csrf_of(client.get(f"/jobs/{job_id}").text)
    headers = {"Origin": origin} if origin else {}
    data = {"csrf": csrf} if send_csrf else {}
    refused = client.post(f"/jobs/{job_id}/cancel", data=data, headers=headers)
    assert refused.status_code == 403
    assert why in refused.text
    assert services.jobs.get(job_id).status == Status.PENDING


def test_another_sessions_csrf_token_is_refused(client: TestClient, services: Services) -> None:
    job_id = pending_job(services)
    other = client_for(services)
    stolen = csrf_of(other.get("/jobs").text)
    csrf_of(client.get("/jobs").text)  # this browser has its own session
    refused = client.post(f"/jobs/{job_id}/cancel", data={"csrf": stolen}, headers={"Origin": OWN})
    assert refused.status_code == 403
    assert services.jobs.get(job_id).status == Status.PENDING


@pytest.mark.parametrize("path", ["/dlq/preview", "/dlq/apply", "/schedules/x/pause"])
def test_every_change_checks_origin_first(client: TestClient, path: str) -> None:
    client.get("/")
    refused = client.post(path, data={"operation": "purge", "scope": "matching"})
    assert refused.status_code == 403


def test_a_rebinding_host_name_is_refused(client: TestClient) -> None:
    refused = client.get("/", headers={"Host": f"attacker.example:{PORT}"})
    assert refused.status_code == 403
    assert "is not this dashboard" in refused.text


def test_with_a_token_nothing_is_served_without_it(services: Services) -> None:
    with client_for(services, TOKEN) as client:
        assert client.get("/jobs").status_code == 401
        assert client.get("/jobs?token=wrong").status_code == 401
        assert client.get("/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        login = client.get(f"/jobs?status=failed&token={TOKEN}")
        assert login.status_code == 303
        assert login.headers["location"] == "/jobs?status=failed"  # the token leaves the URL
        assert TOKEN not in login.cookies[AUTH_COOKIE]
        assert client.get("/jobs").status_code == 200  # the cookie stands for it now


def test_a_script_payload_is_escaped(client: TestClient, services: Services) -> None:
    hostile = "<script>alert(1)</script>"
    job = services.jobs.submit(JobRequest(task="echo", payload={"message": hostile})).job
    page = client.get(f"/jobs/{job.id}").text
    assert hostile not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_bad_input_is_a_clear_page_not_a_trace(client: TestClient) -> None:
    for path, status in [
        ("/jobs?status=bogus", 400),
        ("/jobs?limit=0", 400),
        ("/jobs?task=" + "x" * 3000, 400),
        ("/jobs?status=failed&tenant=a%23b", 400),
        ("/jobs?status=failed&cursor=bm90LWEtY3Vyc29y", 422),
        ("/jobs?q=%3Cscript%3E", 404),
        ("/jobs?cursor=abc", 422),
        ("/jobs/not-a-job", 404),
        (f"/jobs/{'0' * 32}", 404),
        ("/dlq?error_match=(", 400),
        ("/dlq?older_than=soon", 400),
        ("/nowhere", 404),
    ]:
        page = client.get(path)
        assert page.status_code == status, (path, page.text)
        assert 'id="problem"' in page.text
        assert "Traceback" not in page.text


@pytest.mark.parametrize(
    ("path", "form", "status", "says"),
    [
        ("/schedules/nope/pause", {}, 422, "unknown schedule"),
        ("/schedules/nope/explode", {}, 404, "no such page"),
        ("/dlq/preview", {"operation": "explode"}, 400, "redrive or purge"),
        ("/dlq/preview", {"operation": "purge"}, 400, "select at least one"),
        ("/dlq/preview", {"operation": "purge", "id": "../../etc"}, 400, "neither a job id"),
        ("/dlq/apply", {"operation": "purge", "scope": "matching"}, 400, "nothing confirmed"),
        (f"/jobs/{'0' * 32}/cancel", {}, 404, "not found"),
    ],
)
def test_a_bad_form_is_a_clear_page(
    client: TestClient, path: str, form: dict[str, str], status: int, says: str
) -> None:
    csrf = csrf_of(client.get("/").text)
    answer = client.post(path, data={"csrf": csrf, **form}, headers={"Origin": OWN})
    assert answer.status_code == status, answer.text
    assert says in answer.text and "Traceback" not in answer.text


def test_a_script_asking_for_json_gets_problem_json(services: Services) -> None:
    with client_for(services, TOKEN) as client:
        refused = client.get("/jobs", headers={"Accept": "application/json"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 401 and "token" in refused.json()["detail"]


def test_no_secrets_on_a_page(client: TestClient, services: Services) -> None:
    job_id = pending_job(services)
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/dlq", "/schedules"):
        page = client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert "testing" not in page.text  # the AWS key id and secret of the mock
        assert "key_hash" not in page.text


def test_loopback_is_what_the_cli_allows_without_a_token() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.5", "example.com", "::"))
    assert Guard(port=1).csrf_token("a") != Guard(port=1).csrf_token("a")  # secret per start
