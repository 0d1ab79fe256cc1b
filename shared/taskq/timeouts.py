"""Run one task under its own timeout without blocking the worker's event loop.

`async def` tasks run on the loop; `asyncio.wait_for` cancels them at their timeout.
Plain tasks run in a bounded thread pool. A thread cannot be interrupted, so at the
timeout the worker stops waiting and the thread ends on its own; the pool is then
replaced, so a stuck thread never takes a slot from later tasks, and the invocation
returns before its deadline whatever the thread does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taskq.errors import TaskTimeout


class TaskRunner:
    """Runs task functions for the worker: async ones awaited, plain ones in threads."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, threads)
        self._pool = self._new_pool()

    async def run(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, is_async: bool, timeout_s: float
    ) -> Any:
        if is_async:
            try:
                return await asyncio.wait_for(fn(*args), timeout_s)
            except TimeoutError:
                raise TaskTimeout(f"task timed out after {timeout_s:g} s") from None
        # The thread sees the record's log context (job_id, attempt), as the loop does.
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            stuck, self._pool = self._pool, self._new_pool()
            stuck.shutdown(wait=False)
            raise TaskTimeout(f"task timed out after {timeout_s:g} s") from None

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="taskq-task")
