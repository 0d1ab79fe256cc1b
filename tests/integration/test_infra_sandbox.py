"""infra.sandbox: Lambda-like execution environments in processes (no emulator needed)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.sandbox import (
    FunctionCrashed,
    FunctionError,
    FunctionTimeout,
    InvokeError,
    LocalFunction,
)
from infra.template import FunctionSpec

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOY = FIXTURES / "functions" / "toy"
LAYER = FIXTURES / "layers" / "toy"


@pytest.fixture
def info() -> Iterator[LocalFunction]:
    spec = FunctionSpec(
        "Info", TOY, "app.info", timeout=3, memory=256, environment={"FROM_TEMPLATE": "1"},
        layers=(LAYER,), name="toy-info", arn="arn:aws:lambda:us-east-1:1:function:toy-info",
    )  # fmt: skip
    function = LocalFunction(spec, extra_env={"AWS_REGION": "eu-west-1"}, max_concurrency=2)
    yield function
    function.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_warm_reuse_environment_and_context(info: LocalFunction) -> None:
    first, second = info.invoke({}), info.invoke({})
    assert first["pid"] == second["pid"] != os.getpid()  # one warm sandbox, reused
    assert (first["calls"], second["calls"]) == (1, 2)  # module state survives, as on Lambda
    env = first["env"]
    assert env["FROM_TEMPLATE"] == "1"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "toy-info"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "3"
    assert "PYTEST_CURRENT_TEST" not in env  # the caller's environment does not leak in
    assert first["path"] == [str(TOY), str(LAYER)]
    assert first["layer"] == "from-layer"
    assert first["cwd"] == str(TOY)
    ctx = first["context"]
    assert ctx["function_name"] == "toy-info"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:1:function:toy-info"
    assert ctx["memory_limit_in_mb"] == 256
    assert ctx["function_version"] == "$LATEST"
    assert ctx["log_group_name"] == "/aws/lambda/toy-info"
    assert ctx["aws_request_id"] and ctx["log_stream_name"]
    assert 2000 < ctx["remaining_ms"] <= 3000


def test_concurrency_is_bounded() -> None:
    function = LocalFunction(FunctionSpec("Sleep", TOY, "app.sleep"), max_concurrency=2)
    pids: list[int] = []

    def run() -> None:
        pids.append(function.invoke({"seconds": 0.3})["pid"])

    threads = [threading.Thread(target=run) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        function.close()
    assert len(pids) == 3
    assert len(set(pids)) == 2  # two sandboxes at most; the third call waited for a warm one


def test_same_module_name_in_two_functions() -> None:
    other = LocalFunction(FunctionSpec("Other", FIXTURES / "functions" / "other", "app.handler"))
    echo = LocalFunction(FunctionSpec("Echo", TOY, "app.echo"))
    try:
        assert other.invoke({}) == "other"
        assert echo.invoke({"k": [1, 2]}) == {"k": [1, 2]}
    finally:
        other.close()
        echo.close()


def test_errors_keep_the_sandbox_warm() -> None:
    function = LocalFunction(FunctionSpec("Boom", TOY, "app.boom"))
    try:
        with pytest.raises(FunctionError) as err:
            function.invoke({})
        assert (err.value.error_type, err.value.message) == ("ValueError", "boom")
        assert "app.py" in err.value.trace
        with pytest.raises(FunctionError):
            function.invoke({})
    finally:
        function.close()


def test_import_error() -> None:
    function = LocalFunction(FunctionSpec("Missing", TOY, "nope.handler"))
    try:
        with pytest.raises(FunctionError) as err:
            function.invoke({})
        assert err.value.error_type == "Runtime.ImportModuleError"
    finally:
        function.close()


def test_timeout_kills_the_sandbox_and_the_next_call_cold_starts() -> None:
    function = LocalFunction(FunctionSpec("Sleep", TOY, "app.sleep", timeout=1))
    try:
        started = time.monotonic()
        with pytest.raises(FunctionTimeout):
            function.invoke({"seconds": 5})
        assert time.monotonic() - started < 3
        assert function.invoke({"seconds": 0})["slept"] == 0
    finally:
        function.close()


def test_kill_all_crashes_running_invocations() -> None:
    function = LocalFunction(FunctionSpec("Sleep", TOY, "app.sleep", timeout=10))
    try:
        function.invoke({"seconds": 0})  # warm up, so the kill lands mid-invocation
        timer = threading.Timer(0.3, function.kill_all)
        timer.start()
        with pytest.raises(FunctionCrashed):
            function.invoke({"seconds": 5})
        timer.join()
        assert function.invoke({"seconds": 0})["slept"] == 0
    finally:
        function.close()


def test_close_stops_sandboxes(info: LocalFunction) -> None:
    pid = info.invoke({})["pid"]
    info.close()
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)
    with pytest.raises(InvokeError):
        info.invoke({})
