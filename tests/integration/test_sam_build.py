"""`sam build` output runs: the built handlers answer generated events in a fresh interpreter.

Two builds (both `--cached`, so a repeat takes seconds):
- `.aws-sam/build`, the template's Architecture (arm64): what `sam deploy` uploads. Every
  compiled module in it must be for that CPU, the layer's included (a layer built for
  x86_64 under arm64 functions cannot import pydantic on AWS).
- `.aws-sam/host/build`, this machine's CPU: run here by `python -I -S` with only the
  function's folder and the layer's python/ on sys.path (no venv, no repository), as Lambda
  would, against the moto server with the stack provisioned from template.yaml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.clients import client, credentials_env
from infra.emulator import MotoServer
from infra.provision import provision
from infra.samlocal import check_build, host_architecture, template_architecture
from infra.template import Stack
from taskq.auth import KeyStore
from tests.integration.sam_cli import REGION, ROOT, require_sam, run_sam
from tests.lambda_harness import decoded_body, event, http_v2, job_message_event, with_headers

pytestmark = [pytest.mark.sam, pytest.mark.integration]
SAM = require_sam()
DEPLOY_BUILD = ROOT / ".aws-sam" / "build"
HOST_BUILD = ROOT / ".aws-sam" / "host" / "build"

# Runs in `python -I -S`: no site-packages, no PYTHON* variables, no script dir on the path.
RUNNER = textwrap.dedent(
    """
    import json, sys, time, uuid
    function_dir, layer_dir, events_file = sys.argv[1:4]
    sys.path[:0] = [function_dir, layer_dir]
    started = time.perf_counter()
    import app
    import_ms = (time.perf_counter() - started) * 1000

    class Context:
        function_name = "built"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:built"
        memory_limit_in_mb = 512
        aws_request_id = str(uuid.uuid4())
        log_group_name = "/aws/lambda/built"
        log_stream_name = "built"
        def get_remaining_time_in_millis(self):
            return 30000

    results = [app.handler(ev, Context()) for ev in json.load(open(events_file))]
    import boto3, pydantic, taskq
    origins = {m.__name__: m.__file__ for m in (app, taskq, pydantic, boto3)}
    print("RESULT " + json.dumps({"results": results, "origins": origins, "import_ms": import_ms}))
    """
)


def build(*args: str) -> None:
    done = run_sam(SAM, "build", "--cached", "--parallel", *args, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def deploy_build() -> Path:
    build()
    return DEPLOY_BUILD


@pytest.fixture(scope="module")
def host_build() -> Path:
    arch = host_architecture()
    build(
        "--parameter-overrides", f"Architecture={arch}",
        "--build-dir", str(HOST_BUILD), "--cache-dir", str(HOST_BUILD.parent / "cache"),
    )  # fmt: skip
    return HOST_BUILD


def test_the_deploy_build_is_all_for_the_functions_architecture(deploy_build: Path) -> None:
    arch = template_architecture()
    assert check_build(deploy_build, arch) == []
    assert any(
        True for _ in (deploy_build / "TaskqLayer" / "python" / "pydantic_core").glob("*.so")
    )


def test_the_host_build_is_all_for_this_machine(host_build: Path) -> None:
    assert check_build(host_build, host_architecture()) == []


class Built:
    """The host build's functions, each run in a fresh `python -I -S` per call."""

    def __init__(self, build_dir: Path, stack: Stack, endpoint: str, tmp: Path) -> None:
        self.build_dir = build_dir
        self.stack = stack
        self.endpoint = endpoint
        self.tmp = tmp

    def run(self, function: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        events_file = self.tmp / f"{function}-{len(list(self.tmp.iterdir()))}.json"
        events_file.write_text(json.dumps(events))
        fn_dir = self.build_dir / function
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **self.stack.function(function).environment,
            **credentials_env(),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": self.stack.function_name(function),
            "LAMBDA_TASK_ROOT": str(fn_dir),
        }
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", RUNNER, str(fn_dir),
             str(self.build_dir / "TaskqLayer" / "python"), str(events_file)],
            cwd=fn_dir, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"{function}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        out: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
        for module, origin in out["origins"].items():
            assert origin.startswith(str(self.build_dir)), f"{function}: {module} from {origin}"
        return out


@pytest.fixture
def built(host_build: Path, moto_server: MotoServer, stage: str, tmp_path: Path) -> Iterator[Built]:
    params = {"Stage": stage, "AuthMode": "required"}
    stack = Stack.from_file(ROOT / "template.yaml", parameters=params, endpoint_url=moto_server.url)
    resources = provision(stack, endpoint_url=moto_server.url, region=REGION)
    yield Built(
        host_build,
        stack.bind(resources.queue_urls, resources.queue_arns),
        moto_server.url,
        tmp_path,
    )


def test_the_built_handlers_answer_generated_events(built: Built, moto_server: MotoServer) -> None:
    keys = KeyStore(
        built.stack.table_name("ApiKeysTable"),
        client("dynamodb", endpoint_url=moto_server.url, region=REGION),
    )
    _, key = keys.create("acme", "sam build test")
    auth = {"Authorization": f"Bearer {key}"}

    api = built.run(
        "ApiFunction",
        [
            event("apigw-http-get-healthz"),
            event("apigw-rest-get-healthz"),
            with_headers(event("apigw-http-post-jobs"), auth),
        ],
    )
    health_v2, health_v1, submitted = api["results"]
    assert (health_v2["statusCode"], health_v1["statusCode"], submitted["statusCode"]) == (
        200,
        200,
        202,
    )
    job_id = decoded_body(submitted)["id"]

    worker = built.run("WorkerFunction", [job_message_event(job_id), event("sqs-receive-message")])
    assert worker["results"] == [{"batchItemFailures": []}, {"batchItemFailures": []}]

    read = built.run("ApiFunction", [with_headers(http_v2("GET", f"/jobs/{job_id}"), auth)])
    job = decoded_body(read["results"][0])
    assert (job["status"], job["result"]) == ("completed", {"message": "hi from sam"})
