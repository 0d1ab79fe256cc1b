"""The lines tasks write with `ctx.log`: a table of their own, one item per line.

Outside the job item, so the job stays small (a line costs one write unit, not a rewrite
of the job) and a listing of jobs never carries them. The key is (job_id, seq) with
seq = run * RUN_SPAN + n: `run` counts every attempt the job ever started (across
redrives, where the attempt number starts again), `n` the line's place within it, so a
Query returns a job's lines in order. Each run keeps at most LINES_PER_RUN lines and
BYTES_PER_RUN bytes; what it drops is counted in one marker line at the run's end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from taskq.aws import call
from taskq.errors import BackendError, InvalidRequest
from taskq.models import LogLine
from taskq.store.batches import BATCH_TRIES
from taskq.store.codec import Item, clip
from taskq.text import parse_stored_time, stored_time

RUN_SPAN = 1_000_000
LINES_PER_RUN = 200
LINE_MAX_CHARS = 1000  # longer lines are cut, ending in "…"
BYTES_PER_RUN = 64 * 1024
MARKER_N = RUN_SPAN - 1  # the dropped-lines marker sorts after its run's lines
WRITE_BATCH = 25  # BatchWriteItem takes at most 25 items
LOG_PAGE_MAX = 500
LOG_CURSOR_MAX_DIGITS = 15


@dataclass(frozen=True)
class StoredLine:
    run: int
    n: int
    attempt: int
    at: float
    message: str

    @property
    def seq(self) -> int:
        return self.run * RUN_SPAN + self.n


def marker_text(dropped: int) -> str:
    return (
        f"[taskq] {dropped} more line(s) dropped: at most {LINES_PER_RUN} lines and "
        f"{BYTES_PER_RUN // 1024} KiB per attempt are kept"
    )


def line_item(job_id: str, line: StoredLine, expires_at: int) -> Item:
    return {
        "job_id": {"S": job_id},
        "seq": {"N": str(line.seq)},
        "attempt": {"N": str(line.attempt)},
        "at": {"S": stored_time(line.at)},
        "message": {"S": clip(line.message, LINE_MAX_CHARS)},
        "expires_at": {"N": str(expires_at)},
    }


def write_requests(
    table: str, job_id: str, lines: Iterable[StoredLine], expires_at: int
) -> list[dict[str, Any]]:
    """BatchWriteItem requests (RequestItems) of at most 25 puts each."""
    puts = [{"PutRequest": {"Item": line_item(job_id, line, expires_at)}} for line in lines]
    return [{table: puts[i : i + WRITE_BATCH]} for i in range(0, len(puts), WRITE_BATCH)]


def to_line(item: Item) -> LogLine:
    return LogLine(
        at=parse_stored_time(item["at"]["S"]),
        attempt=int(item["attempt"]["N"]),
        message=item["message"]["S"],
    )


def encode_after(seq: int) -> str:
    """The cursor after a line: its seq, as digits (opaque to clients)."""
    return str(seq)


def decode_after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or not cursor.isascii() or len(cursor) > LOG_CURSOR_MAX_DIGITS:
        raise InvalidRequest("after must be a next_cursor from an earlier page", field="after")
    return int(cursor)


def query_request(table: str, job_id: str, after: int | None, limit: int) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "job_id = :job"
        + (" AND seq > :after" if after is not None else ""),
        "ExpressionAttributeValues": {":job": {"S": job_id}},
        "Limit": limit,
        "ConsistentRead": True,
    }
    if after is not None:
        request["ExpressionAttributeValues"][":after"] = {"N": str(after)}
    return request


class LogLines:
    """Reads a job's lines for the API, the CLI and the dashboard (sync client)."""

    def __init__(self, table: str, dynamodb: Any) -> None:
        self.table = table
        self.db = dynamodb

    def page(
        self, job_id: str, after: str | None = None, limit: int = 100
    ) -> tuple[list[LogLine], str | None]:
        """Lines after the cursor, oldest first, and the cursor to ask for the next ones
        (the same cursor when there are none yet: a follower asks again with it)."""
        start = decode_after(after)
        if not 1 <= limit <= LOG_PAGE_MAX:
            raise InvalidRequest(f"limit must be 1..{LOG_PAGE_MAX}", field="limit")
        request = query_request(self.table, job_id, start, limit)
        response = call(self.db, "DynamoDB", "query", request)
        items = response.get("Items", [])
        if not items:
            return [], after
        last = int(items[-1]["seq"]["N"])
        return [to_line(item) for item in items], encode_after(last)


class AsyncLineWriter:
    """Writes lines for the worker through its async client; what DynamoDB leaves
    unprocessed is sent again (taskq.store.batches)."""

    def __init__(
        self,
        table: str,
        dynamodb: Any,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.db = dynamodb
        self.retention_days = retention_days
        self.clock = clock

    async def write(self, job_id: str, lines: list[StoredLine]) -> None:
        # Lines expire a day after their job would, counted from when they were written.
        expires = int(self.clock() + (self.retention_days + 1) * 86_400)
        for request in write_requests(self.table, job_id, lines, expires):
            pending = request
            for attempt in range(BATCH_TRIES):
                response = await self.db.call("batch_write_item", {"RequestItems": pending})
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise BackendError("DynamoDB left log lines unprocessed")
