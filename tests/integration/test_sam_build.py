"""`sam build` output runs: the built handlers answer generated events in a fresh interpreter.

Two builds (both `--cached`, so a repeat takes seconds):
- `.aws-sam/build`, the template's Architecture (arm64): what `sam deploy` uploads. Every
  compiled module in it must be for that CPU, the layer's included (a layer built for
  x86_64 under arm64 functions cannot import pydantic on AWS).
- `.aws-sam/host/build`, this machine's CPU: run here by `python -I -S` with only the
  function's folder and its layers' python/ folders on sys.path (no venv, no repository),
  as Lambda would, against the moto server with the stack provisioned from template.yaml.

Your task modules (tasks/) are a layer of their own, TasksLayer, built from layers/tasks
(symlinks to tasks/ and tasks/requirements.txt): both builds must hold the package as real
files under python/tasks/, where Lambda's /opt/python puts it on sys.path, and the built API
and worker must import a task module from there and run a job of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.bytecode import compile_build
from infra.clients import client, credentials_env
from infra.emulator import MotoServer
from infra.provision import provision
from infra.samlocal import check_build, host_architecture, template_architecture
from infra.template import Stack
from taskq.auth import KeyStore
from tests.integration.sam_cli import REGION, ROOT, require_sam, run_sam
from tests.lambda_harness import decoded_body, event, http_v2, job_message_event, with_headers

# A test's time includes its build fixture's: a first `sam build` resolves and downloads
# the layers' dependencies (run_sam allows it 900 s), well past pytest's default 120 s.
pytestmark = [pytest.mark.sam, pytest.mark.integration, pytest.mark.timeout(1200)]
SAM = require_sam()
DEPLOY_BUILD = ROOT / ".aws-sam" / "build"
HOST_BUILD = ROOT / ".aws-sam" / "host" / "build"
FUNCTIONS = ("ApiFunction", "WorkerFunction", "SweeperFunction")

# Runs in `python -I -S`: no site-packages, no PYTHON* variables, no script dir on the path.
RUNNER = textwrap.dedent(
    """
    import json, sys, time, uuid
    function_dir, events_file, *layer_dirs = sys.argv[1:]
    sys.path[:0] = [function_dir, *layer_dirs]
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
    origins.update({n: m.__file__ for n, m in sys.modules.items() if n.startswith("tasks")})
    print("RESULT " + json.dumps({"results": results, "origins": origins, "import_ms": import_ms}))
    """
)


def build(build_dir: Path, *args: str) -> None:
    """sam build, then the bytecode step the Makefile runs after it (infra/bytecode.py)."""
    done = run_sam(SAM, "build", "--cached", "--parallel", *args, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "compiled for" in compile_build(build_dir)


@pytest.fixture(scope="module")
def deploy_build() -> Path:
    build(DEPLOY_BUILD)
    return DEPLOY_BUILD


@pytest.fixture(scope="module")
def host_build() -> Path:
    arch = host_architecture()
    build(
        HOST_BUILD, "--parameter-overrides", f"Architecture={arch}",
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


def test_the_deploy_build_ships_hash_checked_bytecode(deploy_build: Path) -> None:
    """SAM's zip dates every file 1980: only hash-checked .pyc (PEP 552 flags 0b11) stay
    valid on Lambda, for taskq's modules and its dependencies' alike."""
    tag = sys.implementation.cache_tag
    layer = deploy_build / "TaskqLayer" / "python"
    sources = [
        *(layer / "taskq").rglob("*.py"),
        *(layer / "pydantic").glob("*.py"),
        deploy_build / "ApiFunction" / "app.py",
    ]
    assert len(sources) > 50
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert int.from_bytes(cached.read_bytes()[4:8], "little") == 0b11, cached


@pytest.mark.parametrize("which", ["deploy", "host"])
def test_both_builds_package_the_tasks_folder_where_python_finds_it(
    which: str, request: pytest.FixtureRequest
) -> None:
    build_dir: Path = request.getfixturevalue(f"{which}_build")
    source = ROOT / "tasks"
    packaged = build_dir / "TasksLayer" / "python" / "tasks"  # /opt/python/tasks on Lambda
    expected = {p.relative_to(source) for p in source.rglob("*.py") if "__pycache__" not in p.parts}
    assert {Path("__init__.py"), Path("example.py")} <= expected
    for relative in expected:
        copy = packaged / relative
        assert copy.is_file() and not copy.is_symlink(), copy  # the zip holds files, not links
        assert copy.read_bytes() == (source / relative).read_bytes(), relative
    # Layers unpack into one /opt/python, the later one's files over the earlier one's: a
    # package both layers bring must be the same version there, or it ends up a mix of two.
    library = distributions(build_dir / "TaskqLayer" / "python")
    mine = distributions(build_dir / "TasksLayer" / "python")
    clashes = {name: (library[name], mine[name]) for name in library.keys() & mine.keys()}
    assert all(a == b for a, b in clashes.values()), (
        f"tasks/requirements.txt brings other versions of the library layer's packages "
        f"{clashes}: pin the library layer's versions there"
    )
    assert not (build_dir / "TaskqLayer" / "python" / "tasks").exists()
    # The API and the worker get it after the library; the sweeper does without.
    built = Stack.from_file(build_dir / "template.yaml", parameters={"AuthMode": "off"})
    names = {p.name for p in built.layer_dirs().values()}
    assert names == {"TaskqLayer", "TasksLayer"}
    layers = {lid: [p.name for p in built.function(lid).layers] for lid in FUNCTIONS}
    assert layers == {
        "ApiFunction": ["TaskqLayer", "TasksLayer"],
        "WorkerFunction": ["TaskqLayer", "TasksLayer"],
        "SweeperFunction": ["TaskqLayer"],
    }


def distributions(site: Path) -> dict[str, str]:
    """{project name: version} of the packages pip installed in a layer's python/ folder."""
    found = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        found[name.lower().replace("_", "-")] = version
    return found


class Built:
    """The host build's functions, each run in a fresh `python -I -S` per call."""

    def __init__(self, build_dir: Path, stack: Stack, endpoint: str, tmp: Path) -> None:
        self.build_dir = build_dir
        self.stack = stack
        self.endpoint = endpoint
        self.tmp = tmp

    def layers(self, function: str) -> list[Path]:
        """The function's built layers' python/ folders, in the template's order."""
        logical_ids = {path: lid for lid, path in self.stack.layer_dirs().items()}
        spec = self.stack.function(function)
        return [self.build_dir / logical_ids[path] / "python" for path in spec.layers]

    def run(
        self, function: str, events: list[dict[str, Any]], env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Import the handler and answer `events`; what it returned, and where modules came from."""
        done = self.execute(function, events, env)
        assert done.returncode == 0, f"{function}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        out: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
        for module, origin in out["origins"].items():
            assert origin.startswith(str(self.build_dir)), f"{function}: {module} from {origin}"
        return out

    def execute(
        self, function: str, events: list[dict[str, Any]], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The interpreter's run, whatever its outcome (the template's environment, then `env`)."""
        events_file = self.tmp / f"{function}-{len(list(self.tmp.iterdir()))}.json"
        events_file.write_text(json.dumps(events))
        fn_dir = self.build_dir / function
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **self.stack.function(function).environment,
            **credentials_env(),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": self.stack.function_name(function),
            "LAMBDA_TASK_ROOT": str(fn_dir),
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-I", "-S", "-c", RUNNER, str(fn_dir), str(events_file),
             *(str(p) for p in self.layers(function))],
            cwd=fn_dir, env=environment, capture_output=True, text=True, timeout=120,
        )  # fmt: skip


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


def test_the_built_handlers_run_a_task_of_yours(built: Built, moto_server: MotoServer) -> None:
    """TASKQ_TASK_MODULES naming tasks.example: the built API validates and accepts a job of
    it (init imports the module from the tasks layer), the built worker runs it."""
    keys = KeyStore(
        built.stack.table_name("ApiKeysTable"),
        client("dynamodb", endpoint_url=moto_server.url, region=REGION),
    )
    _, key = keys.create("acme", "own tasks")
    auth = {"Authorization": f"Bearer {key}"}
    mine = {"TASKQ_TASK_MODULES": "taskq.demo_tasks,tasks.example"}

    job = {"task": "greet", "payload": {"name": "SAM"}}
    api = built.run("ApiFunction", [http_v2("POST", "/jobs", body=job, headers=auth)], mine)
    assert api["results"][0]["statusCode"] == 202, api["results"][0]
    assert api["origins"]["tasks.example"] == str(
        built.build_dir / "TasksLayer" / "python" / "tasks" / "example.py"
    )
    job_id = decoded_body(api["results"][0])["id"]

    message = job_message_event(job_id)
    for record in message["Records"]:
        record["body"] = record["body"].replace('"task":"echo"', '"task":"greet"')
        record["md5OfBody"] = hashlib.md5(
            record["body"].encode(), usedforsecurity=False
        ).hexdigest()
    worker = built.run("WorkerFunction", [message], mine)
    assert worker["results"] == [{"batchItemFailures": []}]

    read = built.run("ApiFunction", [with_headers(http_v2("GET", f"/jobs/{job_id}"), auth)], mine)
    done = decoded_body(read["results"][0])
    assert (done["status"], done["result"]) == (
        "completed",
        {"greeting": "Hello, SAM!", "attempt": 1},
    )


def test_the_built_api_fails_its_init_on_a_module_it_cannot_import(built: Built) -> None:
    """The import of app.py raises (Lambda's init fails): no handler is there to answer 500s."""
    done = built.execute(
        "ApiFunction", [event("apigw-http-get-healthz")], {"TASKQ_TASK_MODULES": "tasks.nope"}
    )
    assert done.returncode != 0
    assert "RESULT " not in done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        "taskq.errors.ConfigError: cannot import task module 'tasks.nope': there is no "
        "tasks/nope.py; create it or correct TASKQ_TASK_MODULES (the TaskModules parameter on AWS)"
    )
