"""What a running attempt reports from inside its task: progress, log lines, heartbeats.

The task's calls (`ctx.progress`, `ctx.log`, `ctx.heartbeat`) only record what to write
and return at once, from any thread, so an async task's event loop never waits on AWS.
Beside the task, a ticker on the worker's loop writes what accumulated, once a second:
the latest progress (earlier values in between are superseded, never queued) with the
claim's new lease for a task with heartbeat_s, and the log lines in batches. After the
task, one last flush writes what is left before the job's outcome is recorded.

The progress write is fenced by the attempt (`transitions.heartbeat`): once refused, the
job belongs to a newer attempt and this one stops writing progress and leases. Log lines
of a stale attempt are still kept: they are what it did. A failed write is logged and
tried again at the next tick; reporting never fails the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from taskq.backoff import lease_until
from taskq.errors import InvalidTransition, JobNotFound
from taskq.log import logger
from taskq.models import Progress
from taskq.store.lines import BYTES_PER_RUN, LINES_PER_RUN, MARKER_N, StoredLine, marker_text
from taskq.text import first_line

if TYPE_CHECKING:
    from taskq.store.aio import AsyncJobStore
    from taskq.store.lines import AsyncLineWriter

FLUSH_INTERVAL_S = 1.0  # at most one progress write a second per attempt
PROGRESS_DETAIL_MAX_BYTES = 1024
PROGRESS_MESSAGE_MAX_CHARS = 200
T = TypeVar("T")


def checked_progress(value: Any, message: str | None = None) -> tuple[Any, str | None]:
    """A fraction 0..1 or a small JSON object, and an optional message; anything else is
    the task's own bug, raised where it called."""
    if isinstance(value, bool) or not isinstance(value, int | float | dict):
        raise TypeError("progress must be a number from 0 to 1, or a dict of JSON values")
    if isinstance(value, dict):
        try:
            text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"progress detail is not JSON: {exc}") from None
        if len(text.encode()) > PROGRESS_DETAIL_MAX_BYTES:
            raise ValueError(f"progress detail is over {PROGRESS_DETAIL_MAX_BYTES} bytes")
    elif not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"progress must be from 0 to 1, got {value!r}")
    if message is not None:
        message = str(message)[:PROGRESS_MESSAGE_MAX_CHARS]
    return value, message


class AttemptReport:
    """The reports of one attempt, between its task and the store."""

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        run: int,
        store: AsyncJobStore,
        lines: AsyncLineWriter | None,
        heartbeat_s: float | None = None,
        extend_visibility: Callable[[int], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.job_id, self.attempt, self.run = job_id, attempt, run
        self.store, self.lines = store, lines
        self.heartbeat_s = heartbeat_s
        self.extend_visibility = extend_visibility
        self.clock = clock
        self._lock = threading.Lock()  # plain tasks call from their threads
        self._progress: Progress | None = None
        self._beat = False
        self._buffer: list[StoredLine] = []
        self._kept = self._kept_bytes = self._dropped = 0
        self._closed = False
        self._stale = False
        self._visible_until: float | None = None

    # --- called by the task (any thread) --------------------------------------------

    def progress(self, checked: tuple[Any, str | None]) -> None:
        value, message = checked
        fraction, detail = (None, value) if isinstance(value, dict) else (float(value), None)
        report = Progress(
            fraction=fraction,
            detail=detail,
            message=message,
            attempt=self.attempt,
            at=datetime.fromtimestamp(self.clock(), UTC),
        )
        with self._lock:
            self._progress, self._beat = report, True

    def heartbeat(self) -> None:
        with self._lock:
            self._beat = True

    def log(self, message: str) -> None:
        size = len(message.encode(errors="replace"))
        with self._lock:
            if self._closed:
                return  # a timed-out thread still writing: its attempt is over
            if self._kept >= LINES_PER_RUN or self._kept_bytes + size > BYTES_PER_RUN:
                self._dropped += 1
                return
            line = StoredLine(self.run, self._kept, self.attempt, self.clock(), message)
            self._buffer.append(line)
            self._kept += 1
            self._kept_bytes += size

    # --- the worker's side -----------------------------------------------------------

    async def alongside(self, work: Awaitable[T]) -> T:
        """Await the task while the ticker writes its reports; flush the rest after."""
        ticker = asyncio.create_task(self._tick())
        try:
            return await work
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await self.flush(final=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self.flush()

    async def flush(self, *, final: bool = False) -> None:
        with self._lock:
            progress, beat, self._progress, self._beat = self._progress, self._beat, None, False
            lines, self._buffer = self._buffer, []
            if final:
                self._closed = True
                if self._dropped:
                    marker = marker_text(self._dropped)
                    lines.append(StoredLine(self.run, MARKER_N, self.attempt, self.clock(), marker))
        try:
            if beat and not self._stale:
                await self._write_heartbeat(progress)
            if lines and self.lines is not None:
                await self.lines.write(self.job_id, lines)
        except Exception as exc:  # reporting never fails the job
            logger.warning("progress or log lines not written", extra={"error": first_line(exc)})
            if not final:
                self._requeue(progress, beat, lines)

    def _requeue(self, progress: Progress | None, beat: bool, lines: list[StoredLine]) -> None:
        with self._lock:
            self._progress = self._progress or progress
            self._beat = self._beat or beat
            self._buffer = lines + self._buffer

    async def _write_heartbeat(self, progress: Progress | None) -> None:
        now = self.clock()
        lease = None if self.heartbeat_s is None else lease_until(now, self.heartbeat_s)
        if progress is None and lease is None:
            return  # a heartbeat from a task without heartbeat_s: its lease is the timeout
        write = self.store.transitions.heartbeat(
            self.job_id,
            self.attempt,
            progress_json=None if progress is None else progress.model_dump_json(),
            lease_until=lease,
        )
        try:
            await self.store.touch(write)
        except (InvalidTransition, JobNotFound):
            self._stale = True
            logger.warning("progress refused: a newer attempt owns the job")
            return
        if lease is not None:
            await self._keep_invisible(now, lease)

    async def _keep_invisible(self, now: float, lease: float) -> None:
        """Keep the SQS message hidden a little past the lease, so no other worker gets
        it while this one lives; set again only when the lease nears the last setting."""
        if self.extend_visibility is None or self.heartbeat_s is None:
            return
        if self._visible_until is not None and self._visible_until >= lease + self.heartbeat_s:
            return
        seconds = math.ceil(lease - now + 2 * self.heartbeat_s)
        await self.extend_visibility(seconds)
        self._visible_until = now + seconds
