"""Hypothesis against the library's parsers: any input gives a value or a clean taskq error."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskq.api.body import parse_json
from taskq.auth import Authenticator, KeyStore, bearer_key
from taskq.errors import InvalidRequest, Unauthorized
from taskq.models import TASK_NAME_PATTERN, JobRequest, is_job_id
from taskq.queue import parse_body
from taskq.store import decode_cursor

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.text() | json_values.map(json.dumps))
def test_queue_bodies_parse_or_raise_value_errors(body: str) -> None:
    try:
        message = parse_body(body)
    except (ValueError, ValidationError):
        return
    assert is_job_id(message.job_id)


@given(st.text(max_size=2000))
def test_cursors_decode_or_are_refused(cursor: str) -> None:
    try:
        key = decode_cursor(cursor, "by_phase", "phase", "acme", partitions=["waiting", "live"])
    except InvalidRequest:
        return
    assert key["phase"]["S"] in ("waiting", "live")
    if set(key) != {"phase"}:  # else: the start of a partition
        assert set(key) == {"id", "phase", "tenant_created"}
        assert key["tenant_created"]["S"].startswith("acme#")


@given(json_values | st.fixed_dictionaries({"task": st.text(max_size=70)}, optional={
    "payload": json_values, "max_attempts": st.integers(-5, 20)}))  # fmt: skip
def test_job_requests_validate_or_raise(value: Any) -> None:
    try:
        request = JobRequest.model_validate(value)
    except ValidationError:
        return
    assert re.fullmatch(TASK_NAME_PATTERN, request.task)
    assert isinstance(request.payload, dict)
    assert request.max_attempts is None or 1 <= request.max_attempts <= 10


json_texts = st.one_of(
    json_values.map(json.dumps),
    st.text(alphabet='{}[]",:0123456789.eE+-nulltruefalseNaInfiy \\u\x00\ud800', max_size=60),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 200_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)


@settings(max_examples=200)
@given(json_texts.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=64))
def test_bodies_parse_or_are_refused_as_invalid_requests(raw: bytes) -> None:
    """Any bytes: a JSON value, or InvalidRequest (a 422 naming the body), never another
    exception (a 500, or FastAPI's 400): not UTF-8, too deep, a duplicate key, a huge int."""
    try:
        value = parse_json(raw)
    except InvalidRequest as exc:
        assert exc.field == "body" and str(exc)
        return
    assert value is None or isinstance(value, dict | list | str | int | float)


class NoKeys(KeyStore):
    def __init__(self) -> None:
        self.lookups = 0

    def lookup(self, key_id: str) -> None:  # type: ignore[override]
        self.lookups += 1
        return None


@settings(max_examples=300)
@given(st.text(max_size=300), st.text(max_size=300) | st.none())
def test_any_presented_key_is_refused_cleanly(authorization: str, x_api_key: str | None) -> None:
    auth = Authenticator(NoKeys())
    with pytest.raises(Unauthorized):
        auth.tenant_for(bearer_key(authorization, x_api_key))
