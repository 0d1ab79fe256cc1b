"""taskq.text: the one formatter of times and errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from taskq.text import (
    first_line,
    first_validation_error,
    iso_seconds,
    parse_stored_time,
    readable_time,
    stored_time,
)


def test_stored_time_is_fixed_width_and_round_trips() -> None:
    early, late = stored_time(5.0), stored_time(1_700_000_000.25)
    assert len(early) == len(late) and early < late
    assert parse_stored_time(late).timestamp() == 1_700_000_000.25


def test_people_and_machines_read_seconds() -> None:
    assert readable_time(0) == "1970-01-01 00:00:00"
    assert iso_seconds(0) == "1970-01-01T00:00:00+00:00"


def test_first_line_of_an_error_clipped() -> None:
    assert first_line(ValueError("boom\nstack")) == "boom"
    assert first_line(KeyError()) == "KeyError"  # no text: its type
    assert first_line("") == ""
    clipped = first_line("x" * 20, limit=10)
    assert len(clipped) == 10 and clipped.endswith("…")


class _Model(BaseModel):
    count: int


def test_first_validation_error_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        _Model.model_validate({"count": "many"})
    where, message = first_validation_error(info.value, "payload")
    assert where == "payload.count"
    assert "integer" in message
