"""infra.template: the short-tag loader and Stack resolution against the real template.yaml."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from infra.poller import failed_message_ids
from infra.template import (
    FUNCTION,
    QUEUE,
    TABLE,
    Stack,
    TemplateError,
    load_template,
    parse_rate,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
STAGE = "t1a2b3"
ENDPOINT = "http://127.0.0.1:4566"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture
def stack(template: dict[str, Any]) -> Stack:
    return Stack(template, parameters={"Stage": STAGE}, endpoint_url=ENDPOINT, root=ROOT)


def function_with(stack: Stack, kind: str) -> str:
    """The one function having an event of this type (HttpApi, SQS, Schedule)."""
    found = [
        lid
        for lid in stack.logical_ids(FUNCTION)
        if any(e["Type"] == kind for e in stack.properties(lid, FUNCTION)["Events"].values())
    ]
    assert len(found) == 1
    return found[0]


# --- loader --------------------------------------------------------------------------------


def test_short_tags_become_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        """
Resources:
  R:
    Properties:
      ref: !Ref Stage
      att: !GetAtt Queue.Arn
      att_list: !GetAtt [Queue, QueueName]
      sub: !Sub "x-${Stage}"
      sub_list: !Sub ["${A}-y", {A: !Ref Stage}]
      join: !Join [",", [a, !Ref B]]
      select: !Select [0, !GetAZs ""]
      cond: !If [IsProd, !Not [!Equals [a, b]], !And [!Condition C, !Or [x, y]]]
      map: !FindInMap [M, K, V]
      split: !Split [",", "a,b"]
      imp: !ImportValue Shared
      b64: !Base64 hello
"""
    )
    props = load_template(path)["Resources"]["R"]["Properties"]
    assert props["ref"] == {"Ref": "Stage"}
    assert props["att"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert props["att_list"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert props["sub"] == {"Fn::Sub": "x-${Stage}"}
    assert props["sub_list"] == {"Fn::Sub": ["${A}-y", {"A": {"Ref": "Stage"}}]}
    assert props["join"] == {"Fn::Join": [",", ["a", {"Ref": "B"}]]}
    assert props["select"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert props["cond"] == {
        "Fn::If": [
            "IsProd",
            {"Fn::Not": [{"Fn::Equals": ["a", "b"]}]},
            {"Fn::And": [{"Condition": "C"}, {"Fn::Or": ["x", "y"]}]},
        ]
    }
    assert props["map"] == {"Fn::FindInMap": ["M", "K", "V"]}
    assert props["split"] == {"Fn::Split": [",", "a,b"]}
    assert props["imp"] == {"Fn::ImportValue": "Shared"}
    assert props["b64"] == {"Fn::Base64": "hello"}


def test_not_a_template(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("just: text\n")
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(path)


# --- the real template ---------------------------------------------------------------------


def tables(stack: Stack) -> dict[str, dict[str, Any]]:
    """Resolved table properties by physical name."""
    return {
        stack.table_name(t): stack.resolve_tree(stack.properties(t, TABLE), t)
        for t in stack.logical_ids(TABLE)
    }


def test_jobs_table(stack: Stack) -> None:
    jobs = tables(stack)[f"taskq-{STAGE}-jobs"]
    assert {i["IndexName"] for i in jobs["GlobalSecondaryIndexes"]} == {
        "by_phase",
        "by_task",
        "by_wake",
    }
    # Every key attribute defined, and nothing else (DynamoDB refuses unused definitions).
    keys = {k["AttributeName"] for i in jobs["GlobalSecondaryIndexes"] for k in i["KeySchema"]}
    assert {d["AttributeName"] for d in jobs["AttributeDefinitions"]} == keys | {"id"}
    assert jobs["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert jobs["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_an_upgrade_keeps_the_status_index_for_one_deploy() -> None:
    """KeepStatusIndex=true: the table an older stack has, plus the phase index (one index
    added, as a DynamoDB table update allows)."""
    upgrade = Stack.from_file(TEMPLATE, parameters={"Stage": STAGE, "KeepStatusIndex": "true"})
    jobs = tables(upgrade)[f"taskq-{STAGE}-jobs"]
    indexes = {i["IndexName"] for i in jobs["GlobalSecondaryIndexes"]}
    assert indexes == {"by_phase", "by_status", "by_task", "by_wake"}
    assert {"AttributeName": "status", "AttributeType": "S"} in jobs["AttributeDefinitions"]


def test_queues_and_redrive(stack: Stack) -> None:
    worker = function_with(stack, "SQS")
    event = stack.sqs_event(worker)
    assert event is not None
    props = stack.resolve_tree(stack.properties(event.queue, QUEUE), event.queue)
    dlq = stack.dead_letter_queue(event.queue)
    assert dlq is not None
    assert stack.queue_name(event.queue) == f"taskq-{STAGE}-jobs"
    assert stack.queue_name(dlq) == f"taskq-{STAGE}-dlq"
    # AWS's guidance: at least 6 x the function timeout plus the batching window.
    spec = stack.function(worker)
    assert props["VisibilityTimeout"] >= 6 * spec.timeout + event.max_batching_window_s
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": f"arn:aws:sqs:us-east-1:000000000000:taskq-{STAGE}-dlq",
        "maxReceiveCount": 12,
    }
    assert stack.queue_url(dlq) == f"{ENDPOINT}/000000000000/taskq-{STAGE}-dlq"


def test_worker_event_source(stack: Stack) -> None:
    event = stack.sqs_event(function_with(stack, "SQS"))
    assert event is not None
    assert (event.batch_size, event.max_batching_window_s, event.maximum_concurrency) == (10, 0, 5)
    # one mapping per priority's queue, weighted by their maximum concurrency
    events = stack.sqs_events(function_with(stack, "SQS"))
    assert [(e.name, e.queue, e.maximum_concurrency) for e in events] == [
        ("Jobs", "JobQueue", 5),
        ("HighPriorityJobs", "HighPriorityQueue", 4),
        ("LowPriorityJobs", "LowPriorityQueue", 2),
    ]
    for other in events[1:]:
        assert stack.dead_letter_queue(other.queue) == stack.dead_letter_queue(event.queue)
    windowed = Stack(stack.template, parameters={"Stage": STAGE, "BatchingWindow": "2"}, root=ROOT)
    assert windowed.sqs_event(function_with(windowed, "SQS")).max_batching_window_s == 2  # type: ignore[union-attr]
    assert event.function_response_types == ("ReportBatchItemFailures",)
    assert event.report_batch_item_failures


def test_functions_fully_resolved(stack: Stack) -> None:
    # The task modules (tasks/, through layers/tasks) go to the functions that run or
    # validate tasks, or fire their schedules, after the library; the sweeper never
    # imports them.
    with_tasks = {function_with(stack, "HttpApi"), function_with(stack, "SQS"), "ClockFunction"}
    for lid in stack.logical_ids(FUNCTION):
        spec = stack.function(lid)
        assert spec.code_uri.is_absolute()
        assert spec.code_uri.parent == ROOT / "functions"
        tasks_layer = (ROOT / "layers" / "tasks",) if lid in with_tasks else ()
        assert spec.layers == (ROOT / "shared", *tasks_layer), lid
        assert spec.runtime == "python3.11"
        assert spec.memory == 512
        assert spec.name.startswith(f"taskq-{STAGE}-")
        assert all(isinstance(v, str) for v in spec.environment.values()), spec.environment
        assert spec.environment["TASKQ_TABLE"] == f"taskq-{STAGE}-jobs"
        assert spec.environment["TASKQ_RETENTION_DAYS"] == "14"
        assert spec.environment["POWERTOOLS_LOG_LEVEL"] == "INFO"
        assert spec.environment["TASKQ_QUEUE_URL"].startswith(f"{ENDPOINT}/000000000000/")
    assert stack.function(function_with(stack, "SQS")).timeout == 30


def test_the_task_modules_parameter_reaches_every_function(template: dict[str, Any]) -> None:
    """What `make dev` relies on to run your modules: TaskModules sets TASKQ_TASK_MODULES."""
    default = Stack(template, parameters={"Stage": STAGE}, root=ROOT)
    mine = Stack(template, parameters={"Stage": STAGE, "TaskModules": "tasks.example"}, root=ROOT)
    for lid in default.logical_ids(FUNCTION):
        assert default.function(lid).environment["TASKQ_TASK_MODULES"] == "taskq.demo_tasks"
        assert mine.function(lid).environment["TASKQ_TASK_MODULES"] == "tasks.example"
    with pytest.raises(TemplateError, match="TaskModules"):
        Stack(template, parameters={"TaskModules": "tasks/example.py"}, root=ROOT)


def test_bound_urls_and_parameters_win(template: dict[str, Any]) -> None:
    stack = Stack(template, parameters={"Stage": STAGE, "LogLevel": "DEBUG"}, root=ROOT)
    queues = stack.logical_ids(QUEUE)
    bound = stack.bind({q: f"http://real/{q}" for q in queues}, {})
    api = function_with(stack, "HttpApi")
    env = bound.function(api).environment
    assert env["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    urls = {env[f"TASKQ_{n}URL"] for n in ("QUEUE_", "HIGH_QUEUE_", "LOW_QUEUE_", "DLQ_")}
    assert urls == {f"http://real/{q}" for q in queues}
    # without an endpoint or a binding, a URL has AWS's shape
    assert stack.queue_url(queues[0]).startswith(
        "https://sqs.us-east-1.amazonaws.com/000000000000/"
    )


def test_schedule_and_routes(stack: Stack) -> None:
    scheduled = [lid for lid in stack.logical_ids(FUNCTION) if stack.schedules(lid)]
    assert sorted(scheduled) == ["ClockFunction", "SweeperFunction"]
    assert all(stack.schedules(lid) == [60.0] for lid in scheduled)
    routes = stack.http_routes(function_with(stack, "HttpApi"))
    assert {r.key for r in routes} == {"ANY /{proxy+}", "ANY /"}
    assert stack.layer_dirs() == {
        "TaskqLayer": ROOT / "shared",
        "TasksLayer": ROOT / "layers" / "tasks",
    }


# --- errors --------------------------------------------------------------------------------


def test_unknown_function(stack: Stack) -> None:
    with pytest.raises(TemplateError, match="Nope"):
        stack.function("Nope")


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(5 weeks)",
        "cron(0 * * * ? *)",
        5,
    ],
)
def test_malformed_rate(expression: Any) -> None:
    with pytest.raises(TemplateError, match=r"Fn\.Events\.E\.Schedule"):
        parse_rate(expression, "Fn.Events.E")


def test_rates() -> None:
    assert parse_rate("rate(1 hour)", "x") == 3600
    assert parse_rate("rate(2 days)", "x") == 172800
    assert parse_rate("rate(30 seconds)", "x") == 30


def test_bad_parameters(template: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match=r"Parameters\.Stage"):
        Stack(template, parameters={"Stage": "Bad_Stage"})
    with pytest.raises(TemplateError, match="unknown parameter"):
        Stack(template, parameters={"Nope": "x"})
    with pytest.raises(TemplateError, match=r"Parameters\.DefaultMaxAttempts"):
        Stack(template, parameters={"DefaultMaxAttempts": "11"})


def mutated(template: dict[str, Any], lid: str, **props: Any) -> Stack:
    changed = copy.deepcopy(template)
    changed["Resources"][lid]["Properties"].update(props)
    return Stack(changed, parameters={"Stage": STAGE}, root=ROOT)


def test_unsupported_values(template: dict[str, Any], stack: Stack) -> None:
    worker = function_with(stack, "SQS")
    events = copy.deepcopy(stack.properties(worker, FUNCTION)["Events"])
    event = events["Jobs"]
    event["Properties"]["FunctionResponseTypes"] = ["ReportBatchItemFailure"]  # misspelt
    with pytest.raises(TemplateError, match="FunctionResponseTypes"):
        mutated(template, worker, Events=events).sqs_event(worker)
    event["Properties"]["FunctionResponseTypes"] = []
    event["Properties"]["FilterCriteria"] = {"Filters": []}
    with pytest.raises(TemplateError, match="FilterCriteria not supported"):
        mutated(template, worker, Events=events).sqs_event(worker)
    with pytest.raises(TemplateError, match=f"{worker}.Runtime"):
        mutated(template, worker, Runtime="python3.99").function(worker)
    bad_env = {"Variables": {"X": {"Fn::ImportValue": "Elsewhere"}}}
    with pytest.raises(TemplateError, match=f"{worker}.Environment.Variables.X"):
        mutated(template, worker, Environment=bad_env).function(worker)
    with pytest.raises(TemplateError, match="cannot resolve !Ref Missing"):
        stack.resolve({"Ref": "Missing"}, "here")


def test_partial_batch_response_rules() -> None:
    ids = {"a", "b"}

    def failed(response: Any) -> set[str] | None:
        return failed_message_ids(response, ids, report_failures=True)

    assert failed(None) == set()
    assert failed({}) == set()
    assert failed({"batchItemFailures": []}) == set()
    assert failed({"batchItemFailures": [{"itemIdentifier": "a"}]}) == {"a"}
    for invalid in (
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemId": "a"}]},
        {"batchItemFailures": [{"itemIdentifier": "zzz"}]},
        {"batchItemFailures": "a"},
        "ok",
    ):
        assert failed(invalid) is None, invalid
    assert failed_message_ids("anything", ids, report_failures=False) == set()
