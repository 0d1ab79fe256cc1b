"""The real handlers take the events `sam local generate-event` makes (tests/events/), as is.

The stack is provisioned from template.yaml on the moto server process, with API keys
required as in production; each handler runs in this process with its template environment.
Metrics are recorded (a Lambda environment) so their EMF lines can be checked too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from infra.clients import client
from infra.emulator import MotoServer
from infra.provision import Resources, provision
from infra.template import Stack
from taskq.auth import KeyStore
from tests.lambda_harness import (
    TEMPLATE,
    Lambdas,
    decoded_body,
    event,
    http_v2,
    job_message_event,
    reset_process_caches,
    with_headers,
)

pytestmark = pytest.mark.integration
REGION = "us-east-1"


@dataclass
class Deployed:
    lambdas: Lambdas
    resources: Resources
    endpoint: str
    key: str

    def invoke(self, logical_id: str, ev: dict[str, Any]) -> Any:
        return self.lambdas.invoke(logical_id, ev)

    def bearer(self, ev: dict[str, Any]) -> dict[str, Any]:
        return with_headers(ev, {"Authorization": f"Bearer {self.key}"})


@pytest.fixture
def deployed(
    moto_server: MotoServer, stage: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployed]:
    params = {"Stage": stage, "AuthMode": "required"}
    stack = Stack.from_file(TEMPLATE, parameters=params, endpoint_url=moto_server.url)
    resources = provision(stack, endpoint_url=moto_server.url, region=REGION)
    account = next(iter(resources.queue_arns.values())).split(":")[4]
    stack = Stack.from_file(
        TEMPLATE, parameters=params, endpoint_url=moto_server.url, account_id=account
    ).bind(resources.queue_urls, resources.queue_arns)
    ddb = client("dynamodb", endpoint_url=moto_server.url, region=REGION)
    _, key = KeyStore(resources.tables["ApiKeysTable"], ddb).create("acme", "sam events test")
    try:
        lambdas = Lambdas(stack, monkeypatch, endpoint=moto_server.url, region=REGION)
        yield Deployed(lambdas, resources, moto_server.url, key)
    finally:
        reset_process_caches()


def emf(out: str) -> dict[str, float]:
    """Metric name -> summed value, over the EMF lines in captured stdout."""
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        for definition in doc["_aws"]["CloudWatchMetrics"]:
            for metric in definition["Metrics"]:
                values = doc[metric["Name"]]
                values = values if isinstance(values, list) else [values]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


@pytest.mark.parametrize("name", ["apigw-http-get-healthz", "apigw-rest-get-healthz"])
def test_the_api_answers_generated_healthz_events(deployed: Deployed, name: str) -> None:
    response = deployed.invoke("ApiFunction", event(name))
    assert response["statusCode"] == 200
    assert decoded_body(response) == {"status": "ok"}


@pytest.mark.parametrize("name", ["apigw-http-post-jobs", "apigw-rest-post-jobs"])
def test_the_api_takes_a_generated_submit_event(
    deployed: Deployed, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    response = deployed.invoke("ApiFunction", deployed.bearer(event(name)))
    assert response["statusCode"] == 202, response
    job = decoded_body(response)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    assert headers.get("location", (multi.get("location") or [None])[0]) == f"/jobs/{job['id']}"
    assert (job["task"], job["status"], job["payload"]) == (
        "echo",
        "pending",
        {"message": "hi from sam"},
    )
    assert emf(capsys.readouterr().out).get("JobsSubmitted") == 1


def test_a_generated_event_without_a_key_gets_a_401_problem(deployed: Deployed) -> None:
    response = deployed.invoke("ApiFunction", event("apigw-http-post-jobs"))
    assert response["statusCode"] == 401
    assert decoded_body(response)["status"] == 401


def test_the_worker_runs_the_job_of_a_generated_sqs_event(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    submitted = deployed.invoke("ApiFunction", deployed.bearer(event("apigw-http-post-jobs")))
    job_id = decoded_body(submitted)["id"]

    result = deployed.invoke("WorkerFunction", job_message_event(job_id))

    assert result == {"batchItemFailures": []}
    read = deployed.invoke("ApiFunction", deployed.bearer(http_v2("GET", f"/jobs/{job_id}")))
    job = decoded_body(read)
    assert (job["status"], job["result"]) == ("completed", {"message": "hi from sam"})
    metrics = emf(capsys.readouterr().out)
    assert metrics.get("JobsCompleted") == 1
    assert metrics.get("JobDuration", -1) >= 0


def test_the_worker_dead_letters_the_generated_sample_message(deployed: Deployed) -> None:
    result = deployed.invoke("WorkerFunction", event("sqs-receive-message"))

    assert result == {"batchItemFailures": []}  # not a taskq message: acknowledged, kept aside
    sqs = client("sqs", endpoint_url=deployed.endpoint, region=REGION)
    got = sqs.receive_message(
        QueueUrl=deployed.resources.queue_urls["DeadLetterQueue"], WaitTimeSeconds=1
    )
    sample = event("sqs-receive-message")["Records"][0]["body"]
    assert [m["Body"] for m in got.get("Messages", [])] == [sample]
