"""template.yaml invariants that `sam validate --lint` and cfn-lint do not check.

The linters accept `FunctionResponseTypes: [ReportBatchItemFailure]` (misspelt: Lambda then
treats every partial batch response as a success, and failed records are deleted) and a
runtime such as `python3.99`. `problems()` checks those and the rest of what taskq relies
on; the mutation tests show that each check does catch what it is for.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.template import FUNCTION, LAYER, QUEUE, TABLE, Stack, load_template
from taskq.config import MAX_ATTEMPTS_LIMIT

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# Python runtimes Lambda supports for new functions (python3.9 was deprecated on 2025-12-15,
# python3.10 on 2026-06-30). The layer's wheels are built for one of them: see BuildMethod.
SUPPORTED_RUNTIMES = frozenset({"python3.11", "python3.12", "python3.13", "python3.14"})
FOURTEEN_DAYS_S = 14 * 24 * 3600
ALARMS = {  # (namespace, metric, resource the dimension names)
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "DeadLetterQueue"),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage", "JobQueue"),
    ("AWS/Lambda", "Errors", "WorkerFunction"),
    ("AWS/Lambda", "Throttles", "WorkerFunction"),
}
PARAMETERS = {"Stage", "RetentionDays", "LogLevel", "DefaultMaxAttempts", "AlarmTopicArn"}
OUTPUTS = {
    "ApiUrl", "JobsTableName", "JobQueueName", "JobQueueUrl", "DeadLetterQueueName",
    "DeadLetterQueueUrl",
}  # fmt: skip


def _context(doc: dict[str, Any]) -> tuple[Stack, dict[str, Any], dict[str, Any], list[str]]:
    """The template's stack, resources, Globals.Function, and its function logical ids."""
    stack = Stack(doc, root=ROOT)
    glob = (doc.get("Globals") or {}).get("Function") or {}
    return stack, doc["Resources"], glob, stack.logical_ids(FUNCTION)


def problems(doc: dict[str, Any]) -> list[str]:
    """Everything wrong with a template, as one line each (empty: all good)."""
    out = [
        *_function_problems(doc),
        *_layer_problems(doc),
        *_table_problems(doc),
        *_global_problems(doc),
        *_alarm_problems(doc),
    ]
    for name in sorted(PARAMETERS - set(doc.get("Parameters") or {})):
        out.append(f"Parameters: {name} is missing")
    for name in sorted(OUTPUTS - set(doc.get("Outputs") or {})):
        out.append(f"Outputs: {name} is missing")
    return out


def _function_problems(doc: dict[str, Any]) -> list[str]:
    """Each function's runtime, and its SQS events: partial batch responses, and the
    queue's visibility, receive count and dead-letter queue."""
    stack, resources, glob, functions = _context(doc)
    out: list[str] = []
    for lid in functions:
        props = {**glob, **resources[lid]["Properties"]}
        runtime = props.get("Runtime")
        if runtime not in SUPPORTED_RUNTIMES:
            out.append(f"{lid}: runtime {runtime!r} is not a supported Lambda Python runtime")
        for name, ev in (props.get("Events") or {}).items():
            if ev.get("Type") != "SQS":
                continue
            types = ev["Properties"].get("FunctionResponseTypes")
            if types != ["ReportBatchItemFailures"]:
                out.append(
                    f"{lid}.Events.{name}: FunctionResponseTypes is {types!r}, "
                    "not [ReportBatchItemFailures]"
                )
            queue = ev["Properties"]["Queue"]["Fn::GetAtt"][0]
            qprops = resources[queue]["Properties"]
            # AWS: at least six times the function's timeout, plus the batching window.
            visibility = int(qprops.get("VisibilityTimeout", 30))
            timeout = int(props.get("Timeout", 3))
            window_value = ev["Properties"].get("MaximumBatchingWindowInSeconds", 0)
            if isinstance(window_value, dict):  # !Ref a parameter: its largest value
                window_value = doc["Parameters"][window_value["Ref"]]["MaxValue"]
            window = int(window_value)
            if visibility < 6 * timeout + window:
                out.append(
                    f"{queue}: VisibilityTimeout {visibility} s is under 6 x {lid}'s "
                    f"Timeout ({timeout} s) + its batching window ({window} s)"
                )
            receives = int((qprops.get("RedrivePolicy") or {}).get("maxReceiveCount", 0))
            budget = int(doc["Parameters"]["DefaultMaxAttempts"]["MaxValue"])
            if not receives > max(budget, MAX_ATTEMPTS_LIMIT):
                out.append(
                    f"{queue}: maxReceiveCount {receives} is not above the attempt budget "
                    f"({max(budget, MAX_ATTEMPTS_LIMIT)})"
                )
            dlq = stack.dead_letter_queue(queue)
            retention = int(resources[dlq]["Properties"].get("MessageRetentionPeriod", 0))
            if dlq is None or retention != FOURTEEN_DAYS_S:
                out.append(f"{queue}: needs a dead-letter queue keeping messages 14 days")
    return out


def _layer_problems(doc: dict[str, Any]) -> list[str]:
    """Each layer built for the functions' runtime and architecture."""
    stack, resources, glob, functions = _context(doc)
    out: list[str] = []
    for lid in stack.logical_ids(LAYER):
        props, meta = resources[lid]["Properties"], resources[lid].get("Metadata") or {}
        runtimes = {str(glob.get("Runtime"))} | {
            str(resources[f]["Properties"].get("Runtime", glob.get("Runtime"))) for f in functions
        }
        if {str(meta.get("BuildMethod"))} != runtimes or set(
            props["CompatibleRuntimes"]
        ) != runtimes:
            out.append(
                f"{lid}: BuildMethod and CompatibleRuntimes must be the functions' runtime "
                f"{sorted(runtimes)} (its wheels are built for one Python)"
            )
        arch = glob.get("Architectures")
        if [meta.get("BuildArchitecture")] != arch or props.get("CompatibleArchitectures") != arch:
            out.append(f"{lid}: BuildArchitecture/CompatibleArchitectures must be {arch}")
    return out


def _table_problems(doc: dict[str, Any]) -> list[str]:
    """Tables on demand with PITR and SSE; the jobs table's TTL, and every index the store
    queries."""
    stack, resources, _, _ = _context(doc)
    out: list[str] = []
    for lid in stack.logical_ids(TABLE):
        props = resources[lid]["Properties"]
        if props.get("BillingMode") != "PAY_PER_REQUEST":
            out.append(f"{lid}: not on-demand (BillingMode PAY_PER_REQUEST)")
        pitr = props.get("PointInTimeRecoverySpecification") or {}
        if not pitr.get("PointInTimeRecoveryEnabled") or not (
            props.get("SSESpecification") or {}
        ).get("SSEEnabled"):
            out.append(f"{lid}: needs point-in-time recovery and SSE")
    jobs = resources["JobsTable"]["Properties"]
    if jobs.get("TimeToLiveSpecification") != {"AttributeName": "expires_at", "Enabled": True}:
        out.append("JobsTable: TTL must be enabled on expires_at (what the store writes)")
    # Every index the table may have, whichever way a condition (!If) goes.
    indexes = set(re.findall(r"'IndexName': '([a-z_]+)'", str(jobs.get("GlobalSecondaryIndexes"))))
    store = "".join(p.read_text() for p in (ROOT / "shared" / "taskq" / "store").glob("*.py"))
    for index in sorted(set(re.findall(r'"(by_[a-z_]+)"', store)) - indexes):
        out.append(f"JobsTable: the store queries index {index!r}, which the table lacks")
    return out


def _global_problems(doc: dict[str, Any]) -> list[str]:
    """Tracing, Powertools' settings, the endpoint override and the sweeper's schedule."""
    _, resources, glob, _ = _context(doc)
    out: list[str] = []
    if glob.get("Tracing") != "Active":
        out.append("Globals.Function.Tracing must be Active (X-Ray)")
    variables = (glob.get("Environment") or {}).get("Variables") or {}
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"):
        if name not in variables:
            out.append(f"Globals: {name} is not set")
    if variables.get("AWS_ENDPOINT_URL") != "":
        out.append("Globals: AWS_ENDPOINT_URL must be declared, and empty (AWS's endpoints)")

    if not any(
        ev.get("Type") == "Schedule"
        for ev in (resources["SweeperFunction"]["Properties"].get("Events") or {}).values()
    ):
        out.append("SweeperFunction: no Schedule event")
    return out


def _alarm_problems(doc: dict[str, Any]) -> list[str]:
    """Every alarm expected, each notifying the alarm topic when one is given."""
    resources = doc["Resources"]
    out: list[str] = []
    found = set()
    for lid, res in resources.items():
        if res.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        p = res["Properties"]
        dims = [d["Value"] for d in p.get("Dimensions", [])]
        target = next(iter(dims), None)
        name = target.get("Fn::GetAtt", [None])[0] if isinstance(target, dict) else None
        name = name or (target.get("Ref") if isinstance(target, dict) else None)
        found.add((p["Namespace"], p["MetricName"], name))
        topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
        if p.get("AlarmActions") != topic:
            out.append(f"{lid}: AlarmActions must notify AlarmTopicArn when one is given")
    for alarm in sorted(ALARMS - found):
        out.append(f"no alarm on {alarm[0]} {alarm[1]} of {alarm[2]}")
    return out


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_template(TEMPLATE)


def test_the_template_keeps_every_invariant(doc: dict[str, Any]) -> None:
    assert problems(doc) == []


def _mutate(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, last = path.split("/")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return out


WORKER_EVENT = "Resources/WorkerFunction/Properties/Events/Jobs/Properties"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (f"{WORKER_EVENT}/FunctionResponseTypes", ["ReportBatchItemFailure"], "not [ReportBatch"),
        (f"{WORKER_EVENT}/FunctionResponseTypes", [], "not [ReportBatchItemFailures]"),
        ("Globals/Function/Runtime", "python3.99", "'python3.99' is not a supported"),
        ("Globals/Function/Runtime", "python3.9", "'python3.9' is not a supported"),
        ("Resources/JobQueue/Properties/VisibilityTimeout", 180, "under 6 x WorkerFunction"),
        ("Resources/WorkerFunction/Properties/Timeout", 32, "under 6 x WorkerFunction"),
        ("Resources/JobQueue/Properties/RedrivePolicy/maxReceiveCount", 10, "not above the"),
        ("Resources/DeadLetterQueue/Properties/MessageRetentionPeriod", 345600, "14 days"),
        ("Resources/TaskqLayer/Metadata/BuildArchitecture", "x86_64", "BuildArchitecture"),
        ("Resources/TaskqLayer/Properties/CompatibleRuntimes", ["python3.12"], "BuildMethod"),
        ("Resources/JobsTable/Properties/BillingMode", "PROVISIONED", "on-demand"),
        ("Resources/JobsTable/Properties/GlobalSecondaryIndexes", [], "index 'by_phase'"),
        ("Globals/Function/Tracing", "PassThrough", "Tracing must be Active"),
        ("Resources/WorkerThrottlesAlarm/Properties/MetricName", "Invocations", "Throttles"),
    ],
)
def test_each_check_catches_what_it_is_for(
    doc: dict[str, Any], path: str, value: Any, expected: str
) -> None:
    found = problems(_mutate(doc, path, value))
    assert any(expected in line for line in found), found


def test_every_handler_imports_in_a_fresh_interpreter_with_only_its_code_and_layers() -> None:
    """As Lambda loads it: the CodeUri, then the layers, then the runtime's libraries (here
    the venv's), and not the repository root or the test's own sys.path."""
    stack = Stack.from_file(TEMPLATE, parameters={"AuthMode": "off"})
    script = (
        "import importlib, json, sys\n"
        "spec = json.loads(sys.argv[1])\n"
        "sys.path[:0] = [spec['code'], *spec['layers']]\n"
        "module, _, attr = spec['handler'].rpartition('.')\n"
        "assert callable(getattr(importlib.import_module(module), attr)), spec['handler']\n"
    )
    for lid in stack.logical_ids(FUNCTION):
        fn = stack.function(lid)
        spec = {
            "code": str(fn.code_uri),
            "layers": [str(p) for p in fn.layers],
            "handler": fn.handler,
        }
        env = {**os.environ, **fn.environment, "PYTHONSAFEPATH": "1"}  # no cwd on sys.path
        env.pop("PYTHONPATH", None)
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(spec)],
            cwd=fn.code_uri, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, f"{lid}: {fn.handler} does not import:\n{done.stderr}"


def test_the_queue_and_table_names_are_what_the_local_cloud_provisions(
    doc: dict[str, Any],
) -> None:
    stack = Stack(doc, parameters={"Stage": "prod"}, root=ROOT)
    assert stack.queue_name("JobQueue") == "taskq-prod-jobs"
    assert stack.queue_name("DeadLetterQueue") == "taskq-prod-dlq"
    assert stack.table_name("JobsTable") == "taskq-prod-jobs"
    assert {stack.dead_letter_queue(q) for q in stack.logical_ids(QUEUE)} == {
        "DeadLetterQueue",
        None,
    }
