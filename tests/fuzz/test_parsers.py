"""Hypothesis against the library's parsers: any input gives a value or a clean taskq error."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

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
        key = decode_cursor(cursor, "by_status", "status", tenant="acme")
    except InvalidRequest:
        return
    assert set(key) == {"id", "status", "tenant_created"}
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
