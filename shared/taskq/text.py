"""How taskq writes times and errors as text: one formatter each, used everywhere.

Stored timestamps are fixed-width UTC (string order is time order in the indexes);
people read seconds-precision UTC; an error is reported by its first line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

STORED_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def stored_time(epoch: float) -> str:
    """Fixed-width UTC with microseconds: the form written to DynamoDB."""
    return datetime.fromtimestamp(epoch, UTC).strftime(STORED_TIME_FORMAT)


def parse_stored_time(text: str) -> datetime:
    return datetime.strptime(text, STORED_TIME_FORMAT).replace(tzinfo=UTC)


def readable_time(epoch: float) -> str:
    """UTC to the second, for people: 2026-12-02 07:15:04."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso_seconds(epoch: float) -> str:
    """RFC 3339 UTC to the second, for machine-readable output (JSON, audit records)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def first_line(error: BaseException | str, limit: int = 500) -> str:
    """The first non-empty line of an error (its type name when it has no text), clipped."""
    text = error if isinstance(error, str) else str(error)
    lines = text.strip().splitlines()
    fallback = "" if isinstance(error, str) else type(error).__name__
    line = lines[0] if lines else fallback
    return line if len(line) <= limit else line[: limit - 1] + "…"


def first_validation_error(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(field path, message) of pydantic's first error; `prefix` roots the path."""
    errors = exc.errors()
    if not errors:
        return prefix, "invalid value"
    first = errors[0]
    where = ".".join(str(p) for p in (*([prefix] if prefix else []), *first["loc"]))
    return where, str(first["msg"])
