"""Your own tasks on the local cloud, as `TASKQ_TASK_MODULES=tasks.example make dev` runs them.

The stack comes from template.yaml with the TaskModules value `make dev` derives from the
variable; the sandboxes import tasks/ from the tasks layer's folder (layers/tasks), as the
functions import it from the layer on AWS. A job of the example task goes over real HTTP
through the API function, the queue and the worker. A module that cannot be imported stops
`make dev` (the real `python -m infra.dev`) at start with one line, and fails the API
function's init instead of letting it answer requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.dev import task_modules, template_task_modules
from infra.emulator import MotoServer, free_port
from infra.local_cloud import FunctionInitError, LocalCloud
from infra.sandbox import FunctionError, LocalFunction
from infra.template import Stack
from tests.integration.conftest import NO_AUTH
from tests.integration.http import call, wait_for_status

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
MISSING = "tasks.no_such_module"


def dev_parameters(value: str) -> dict[str, str]:
    """The parameters `make dev` gives the stack for TASKQ_TASK_MODULES=value."""
    modules = task_modules(value, template_task_modules())
    assert modules is not None
    return {**NO_AUTH, "TaskModules": modules}


@pytest.fixture(scope="module")
def cloud(moto_server: MotoServer) -> Iterator[LocalCloud]:
    stage = f"own{os.getpid() % 10**6}"
    with LocalCloud(
        TEMPLATE, endpoint_url=moto_server.url, stage=stage,
        parameters=dev_parameters("tasks.example"), init_functions=True, start_scheduler=False,
    ) as running:  # fmt: skip
        yield running


def test_your_task_and_the_demo_tasks_are_listed(cloud: LocalCloud) -> None:
    reply = call("GET", f"{cloud.api_url}/tasks")
    assert reply.status == 200
    tasks = {t["name"]: t for t in reply.json()}
    assert {"greet", "echo", "fail"} <= set(tasks)
    assert tasks["greet"]["payload_schema"]["required"] == ["name"]


def test_a_job_of_your_async_task_completes(cloud: LocalCloud) -> None:
    reply = call("POST", f"{cloud.api_url}/jobs", {"task": "greet", "payload": {"name": "Ada"}})
    assert reply.status == 202, reply.body
    job = wait_for_status(cloud.api_url, reply.json()["id"], {"completed", "failed"})
    assert job["status"] == "completed", job
    assert job["result"] == {"greeting": "Hello, Ada!", "attempt": 1}


def test_the_api_validates_against_your_model(cloud: LocalCloud) -> None:
    reply = call("POST", f"{cloud.api_url}/jobs", {"task": "greet", "payload": {"nom": "Ada"}})
    assert reply.status == 422, reply.body
    assert "payload" in reply.json()["detail"]


def test_a_module_that_cannot_be_imported_fails_the_start(
    moto_server: MotoServer, stage: str
) -> None:
    cloud = LocalCloud(
        TEMPLATE, endpoint_url=moto_server.url, stage=stage,
        parameters=dev_parameters(MISSING), init_functions=True, start_scheduler=False,
    )  # fmt: skip
    with pytest.raises(FunctionInitError) as info:
        cloud.start()
    assert info.value.function == f"taskq-{stage}-api"
    assert f"ConfigError: cannot import task module '{MISSING}'" in str(info.value)
    assert cloud.gateway is None  # it never served
    assert all(not f._idle and not f._busy for f in cloud.functions.values())  # all stopped


def test_the_api_function_fails_its_init_rather_than_answering(
    moto_server: MotoServer, stage: str
) -> None:
    """No sandbox comes up to answer 500s: each invocation is the failed init, as on Lambda."""
    stack = Stack.from_file(TEMPLATE, parameters={"Stage": stage, **dev_parameters(MISSING)})
    function = LocalFunction(stack.function("ApiFunction"), extra_env={"AWS_REGION": "us-east-1"})
    try:
        for _ in range(2):
            with pytest.raises(FunctionError) as info:
                function.invoke({"rawPath": "/tasks"})
            assert info.value.error_type == "ConfigError"
            assert f"cannot import task module '{MISSING}'" in info.value.message
        assert not function._idle
    finally:
        function.close()


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        (MISSING, f"cannot import task module '{MISSING}': there is no tasks/no_such_module.py"),
        ("tasks", "task module 'tasks' registers no task: decorate its task functions with @task"),
    ],
)
def test_make_dev_stops_at_start_with_one_line(
    moto_server: MotoServer, stage: str, modules: str, expected: str
) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server.url,  # not the embedded emulator on 4566
        "TASKQ_API_PORT": str(free_port()),
        "TASKQ_DASHBOARD_PORT": str(free_port()),
        "TASKQ_STAGE": stage,
        "TASKQ_TASK_MODULES": modules,
    }
    done = subprocess.run(
        [sys.executable, "-m", "infra.dev"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""  # no banner: it never said it was running
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"taskq dev: taskq-{stage}-api failed to start: ConfigError: ")
    assert expected in lines[0]
    assert "TASKQ_TASK_MODULES" in lines[0]
