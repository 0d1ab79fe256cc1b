"""taskq.metrics (EMF, flushed per invocation, silent when empty) and taskq.tracing (X-Ray only
where a daemon runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from taskq import metrics as m
from taskq.tracing import tracer, tracing_enabled


@pytest.fixture(autouse=True)
def clean_metrics() -> Iterator[None]:
    m.metrics.clear_metrics()
    yield
    m.metrics.clear_metrics()


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def test_an_invocation_without_metrics_prints_and_warns_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")

    @m.metrics.log_metrics
    def handler(event: Any, context: Any) -> str:
        return "ok"

    assert handler({}, None) == "ok"  # a warning would fail this test (filterwarnings=error)
    assert capsys.readouterr().out == ""


def test_job_metrics_are_flushed_as_one_emf_line_per_invocation(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")

    @m.metrics.log_metrics
    def handler(event: Any, context: Any) -> None:
        m.jobs_submitted(2)
        m.job_completed(0.25)
        m.job_retried()
        m.job_failed()

    handler({}, None)
    (line,) = emf_lines(capsys.readouterr().out)
    (definition,) = line["_aws"]["CloudWatchMetrics"]
    assert definition["Namespace"] == "taskq"
    assert definition["Dimensions"] == [["service"]] and line["service"] == "taskq"
    units = {d["Name"]: d["Unit"] for d in definition["Metrics"]}
    assert units == {
        "JobsSubmitted": "Count",
        "JobsCompleted": "Count",
        "JobsRetried": "Count",
        "JobsFailed": "Count",
        "JobDuration": "Milliseconds",
    }
    assert (line["JobsSubmitted"], line["JobDuration"], line["JobsFailed"]) == ([2], [250.0], [1])
    handler({}, None)  # the next invocation starts from nothing
    assert len(emf_lines(capsys.readouterr().out)) == 1


def test_outside_lambda_nothing_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    m.jobs_submitted()
    m.job_failed()
    assert m.metrics.provider.metric_set == {}


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task"}, False),  # the local sandboxes: no daemon
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000"}, True),
        (
            {
                "LAMBDA_TASK_ROOT": "/var/task",
                "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
                "POWERTOOLS_TRACE_DISABLED": "true",
            },
            False,
        ),
        (
            {
                "LAMBDA_TASK_ROOT": "/var/task",
                "AWS_XRAY_DAEMON_ADDRESS": "x:2000",
                "AWS_SAM_LOCAL": "true",
            },
            False,
        ),
    ],
)
def test_tracing_is_on_only_where_an_x_ray_daemon_runs(env: dict[str, str], enabled: bool) -> None:
    assert tracing_enabled(env) is enabled


def test_the_disabled_tracer_passes_results_and_errors_through() -> None:
    assert tracer.disabled

    @tracer.capture_lambda_handler
    def ok(event: Any, context: Any) -> dict[str, int]:
        return {"n": 1}

    @tracer.capture_lambda_handler
    def boom(event: Any, context: Any) -> None:
        raise ValueError("task failed")

    assert ok({}, None) == {"n": 1}
    with pytest.raises(ValueError, match="task failed"):
        boom({}, None)


def _probe(env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json, sys\n"
        "from taskq.tracing import tracer\n"
        "print(json.dumps({'disabled': bool(tracer.disabled),"
        " 'xray_sdk_loaded': 'aws_xray_sdk.core' in sys.modules}))\n"
    )
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMBDA_", "POWERTOOLS_"))
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_a_daemon_the_x_ray_sdk_is_not_even_imported() -> None:
    assert _probe({"LAMBDA_TASK_ROOT": "/var/task"}) == {"disabled": True, "xray_sdk_loaded": False}


def test_with_a_daemon_the_tracer_is_x_rays() -> None:
    env = {"LAMBDA_TASK_ROOT": "/var/task", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000"}
    assert _probe(env) == {"disabled": False, "xray_sdk_loaded": True}
