"""The bench's write-unit arithmetic, against the template's own indexes and the store's
own requests: what a job's happy path (create, claim, complete) costs in write units."""

from __future__ import annotations

from bench.calls import Call, parse
from bench.cost import FIRST_DESIGN_INDEXES, capacity
from bench.probe_layer.taskq_bench_probe import updated_attributes
from bench.stack import job_indexes
from infra.template import Stack
from taskq.store.codec import NewJob
from taskq.store.transitions import Transitions
from tests.unit.conftest import ROOT

NOW = 1_800_000_000.0


def _call(operation: str, request: dict | None = None, status: int = 200) -> Call:
    touched = frozenset(updated_attributes(request or {}))
    return Call(0.0, "worker", "dynamodb", operation, status, 0, 1, -1, 1.0, touched)


def _happy_path() -> list[Call]:
    """The three writes of a job that runs once and completes, as the store builds them."""
    transitions = Transitions("jobs", retention_days=14)
    new = NewJob(job_id="a" * 32, task="echo", payload_json="{}", max_attempts=3)
    create = transitions.create(new, NOW)
    claim = transitions.claim(new.job_id, NOW + 30, NOW, task="echo")
    complete = transitions.complete(new.job_id, 1, "null", NOW + 1)
    return [
        _call("PutItem", create.request),
        _call("UpdateItem", claim.request),
        _call("UpdateItem", complete.request),
    ]


def _indexes(**parameters: str) -> list[dict]:
    stack = Stack.from_file(ROOT / "template.yaml", parameters={"Stage": "unit", **parameters})
    return job_indexes(stack)


def test_the_happy_path_writes_seven_units_with_the_template_indexes() -> None:
    indexes = _indexes()
    assert {i["name"] for i in indexes} == {"by_phase", "by_task", "by_wake"}
    wru, _ = capacity(_happy_path(), 1, indexes)
    # create: item + by_phase + by_task; the claim: the item alone (it changes no key and
    # nothing by_phase projects); the completion: item + by_phase moved (a delete and a put)
    assert wru == 3 + 1 + 3


def test_a_progress_report_writes_no_index() -> None:
    heartbeat = Transitions("jobs", 14).heartbeat("a" * 32, 1, progress_json='{"fraction":0.5}')
    wru, _ = capacity([_call("UpdateItem", heartbeat.request)], 1, _indexes())
    assert wru == 1


def test_keeping_the_status_index_for_an_upgrade_costs_its_writes_again() -> None:
    indexes = _indexes(KeepStatusIndex="true")
    assert {i["name"] for i in indexes} == {"by_phase", "by_status", "by_task", "by_wake"}
    wru, _ = capacity(_happy_path(), 1, indexes)
    assert wru == 7 + 1 + 2 + 2  # by_status: put, then moved by the claim and the finish


def test_an_index_projecting_everything_is_rewritten_by_each_transition() -> None:
    indexes = FIRST_DESIGN_INDEXES  # the "before" of the bench's cost comparison
    wru, _ = capacity(_happy_path(), 1, indexes)
    assert wru == 3 + 4 + 4  # the layout before by_task became keys-only
    failed, _ = capacity([_call("UpdateItem", status=400)], 1, indexes)
    assert failed == 1  # a refused conditional write still takes a unit


def test_a_call_line_carries_what_the_update_touched() -> None:
    line = "1.0 worker dynamodb UpdateItem 200 0 1 -1 3.20 phase,status"
    assert parse(line).touched == {"phase", "status"}
    assert parse("1.0 api dynamodb PutItem 200 0 1 -1 3.20 -").touched == frozenset()
