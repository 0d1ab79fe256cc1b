"""Payload values JSON cannot carry (NaN, Infinity, nesting past the limit): one check, in
JobRequest, refuses them for the API and the CLI alike, naming the value.

The API side (POST /jobs, each item of POST /jobs:batch) is in tests/unit/test_api.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from taskq.cli import main_with_exit_code
from taskq.config import Settings
from taskq.models import PAYLOAD_DEPTH_MAX, JobRequest, payload_problem


@pytest.mark.parametrize(
    ("payload", "where", "spelled"),
    [({"x": {"y": math.nan}}, ("x", "y"), "NaN"),
     ({"a": [1, 2, {"b": math.inf}]}, ("a", 2, "b"), "Infinity"),
     ({"k": -math.inf}, ("k",), "-Infinity")],
)  # fmt: skip
def test_non_finite_numbers_are_named(
    payload: dict[str, Any], where: tuple[str | int, ...], spelled: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        JobRequest(task="echo", payload=payload)
    (error,) = raised.value.errors()
    assert error["loc"] == ("payload", *where)
    assert error["type"] == "json_number" and error["msg"].startswith(spelled + " ")


def deep(levels: int, container: Any = dict) -> Any:
    value: Any = container()
    for _ in range(levels - 1):
        value = {"a": value} if container is dict else [value]
    return value


@pytest.mark.parametrize("container", [dict, list])
def test_nesting_is_bounded(container: Any) -> None:
    assert payload_problem({"x": deep(PAYLOAD_DEPTH_MAX - 1, container)}) is None
    found = payload_problem({"x": deep(PAYLOAD_DEPTH_MAX, container)})
    assert found is not None and found[1] == "json_depth"
    assert len(found[0]) == PAYLOAD_DEPTH_MAX  # the first container past the limit


def test_a_very_deep_payload_does_not_exhaust_the_stack() -> None:
    # json.loads could not build this, but a Python caller can: the walk is iterative.
    found = payload_problem({"x": deep(100_000, list)})
    assert found is not None and found[1] == "json_depth"


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=3),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                        max_size=3)))  # fmt: skip
def test_a_payload_is_refused_exactly_when_it_holds_a_non_finite_number(value: Any) -> None:
    def finite(v: Any) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
        return all(finite(c) for c in children)

    assert (payload_problem({"v": value}) is None) == finite(value)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_TABLE", settings.table_name)
    monkeypatch.setenv("TASKQ_QUEUE_URL", settings.queue_url)
    monkeypatch.setenv("TASKQ_DLQ_URL", settings.dlq_url)
    for name in ("TASKQ_STACK", "TASKQ_AUTH", "TASKQ_KEYS_TABLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("payload", "field"),
    [('{"x": {"y": NaN}}', "payload.x.y"), ('{"n": [Infinity]}', "payload.n.0"),
     ('{"n": -Infinity}', "payload.n"), ('{"a": ' + "[" * 40 + "]" * 40 + "}",
                                          "payload.a" + ".0" * (PAYLOAD_DEPTH_MAX - 1))],
)  # fmt: skip
def test_the_cli_refuses_them_in_one_line_with_exit_2(
    cli_env: None, capsys: pytest.CaptureFixture[str], payload: str, field: str
) -> None:
    code = main_with_exit_code(["submit", "echo", "--payload", payload])
    out, err = capsys.readouterr()
    assert code == 2 and not out
    (line,) = err.strip().splitlines()
    assert line.startswith(f"taskq: error: {field}: ")
