"""The bench's write-unit arithmetic, against the template's own indexes: what a job's
happy path (create, claim, complete) costs in DynamoDB write units."""

from __future__ import annotations

from bench.calls import Call
from bench.cost import FIRST_DESIGN_INDEXES, capacity
from bench.stack import job_indexes
from infra.template import Stack
from tests.unit.conftest import ROOT


def _call(operation: str, status: int = 200) -> Call:
    return Call(0.0, "worker", "dynamodb", operation, status, 0, 1, -1, 1.0)


def test_the_happy_path_writes_nine_units_with_the_template_indexes() -> None:
    indexes = job_indexes(Stack.from_file(ROOT / "template.yaml", parameters={"Stage": "unit"}))
    assert {i["name"] for i in indexes} == {"by_status", "by_task", "by_wake"}
    create, claim, complete = _call("PutItem"), _call("UpdateItem"), _call("UpdateItem")
    wru, _ = capacity([create, claim, complete], 1, indexes)
    # create: item + by_status + by_task; each transition: item + by_status moved (delete and
    # put); by_task holds keys only and by_wake only delayed jobs, so neither is written
    assert wru == 3 + 3 + 3


def test_an_index_projecting_everything_is_rewritten_by_each_transition() -> None:
    indexes = FIRST_DESIGN_INDEXES  # the "before" of the bench's cost comparison
    wru, _ = capacity([_call("PutItem"), _call("UpdateItem"), _call("UpdateItem")], 1, indexes)
    assert wru == 3 + 4 + 4  # the layout before by_task became keys-only
    failed, _ = capacity([_call("UpdateItem", status=400)], 1, indexes)
    assert failed == 1  # a refused conditional write still takes a unit
