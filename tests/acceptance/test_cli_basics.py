"""The `taskq` command's everyday surface, as a subprocess: submit and wait, read a job,
and the one-line errors with their exit codes (0 ok, 1 not found or refused, 2 usage or
configuration, 3 AWS unreachable)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infra.emulator import free_port
from tests.acceptance.conftest import Ran, Stack, run_taskq

pytestmark = pytest.mark.integration  # a real moto server process and the real worker


def test_submit_wait_then_read_the_job(taskq: Callable[..., Ran]) -> None:
    ran = taskq("submit", "echo", "--payload", '{"greeting": "hi"}', "--wait", "--timeout", "20",
                "--json")  # fmt: skip
    assert ran.code == 0, ran.err
    job = ran.json()
    assert (job["status"], job["result"]) == ("completed", {"greeting": "hi"})

    events = taskq("events", job["id"])
    assert events.code == 0
    for kind in ("pending", "running", "completed"):
        assert kind in events.out
    listed = taskq("jobs", "ls", "--task", "echo", "--json")
    assert job["id"] in [j["id"] for j in listed.json()["items"]]


def test_a_waited_job_that_fails_exits_1(taskq: Callable[..., Ran]) -> None:
    ran = taskq("submit", "fail", "-p", '{"times": 1}', "--max-attempts", "1", "--wait",
                "--timeout", "20")  # fmt: skip
    assert ran.code == 1
    assert "failed" in ran.out and "planned failure 1 of 1" in ran.out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["status", "f" * 32], 1, f"job {'f' * 32} not found"),
        (["status", "nope"], 2, "is not a job id"),
        (["dlq", "redrive", "--older-than", "soon"], 2, "'soon' is not a duration"),
        (["dlq", "redrive"], 2, "say which messages"),
        (["dlq", "ls", "--frobnicate"], 2, "No such option"),
        (["submit", "echo", "--payload", "{oops"], 2, "is not JSON"),
    ],
)
def test_bad_arguments_give_one_line_and_a_non_zero_exit(
    taskq: Callable[..., Ran], argv: list[str], code: int, message: str
) -> None:
    ran = taskq(*argv)
    assert ran.code == code
    assert message in ran.error_line()
    assert ran.out == ""


def test_missing_configuration_is_one_line_and_exit_2(stack: Stack) -> None:
    env = {k: v for k, v in stack.env.items() if k != "TASKQ_TABLE"}
    ran = run_taskq("dlq", "ls", env=env)
    assert ran.code == 2
    assert ran.error_line() == (
        "taskq: error: missing environment variable(s): TASKQ_TABLE (run make dev, or export "
        "the names from its banner; or pass --stack NAME)"
    )


def test_aws_unreachable_is_one_line_and_exit_3(stack: Stack) -> None:
    env = stack.env | {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    ran = run_taskq("stats", env=env)
    assert ran.code == 3
    assert ran.error_line().startswith("taskq: error: cannot reach AWS: ")
