"""Local EventBridge schedules: invoke a function every period with a "Scheduled Event".

Like a rate() rule, the first run comes one period after start. Runs that fall behind (a slow
invocation) are not queued up: the next one starts as soon as the previous one returns.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

from infra.sandbox import Invocable, InvokeError
from infra.service import WorkerThreads

log = logging.getLogger(__name__)


class Scheduler:
    """One thread per period; `interval_override` replaces every period (tests)."""

    def __init__(
        self,
        function: Invocable,
        periods: Sequence[float],
        *,
        region: str,
        account_id: str = "000000000000",
        interval_override: float | None = None,
    ) -> None:
        self.function = function
        self.periods = [interval_override or p for p in periods]
        self.region = region
        self.account_id = account_id
        self.runs = 0
        self._lock = threading.Lock()
        self._workers = WorkerThreads()
        self._stop = self._workers.stopping  # set by stop(): the loops watch it

    def start(self) -> Scheduler:
        self._workers.start(
            (f"schedule-{self.function.name}-{i}", partial(self._run, i, period))
            for i, period in enumerate(self.periods)
        )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._workers.stop(timeout)

    def event(self, index: int) -> dict[str, Any]:
        """The event EventBridge sends for a scheduled rule."""
        rule = f"arn:aws:events:{self.region}:{self.account_id}:rule/{self.function.name}-{index}"
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": self.region,
            "resources": [rule],
            "detail": {},
        }

    def _run(self, index: int, period: float) -> None:
        next_at = time.monotonic() + period
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.function.invoke(self.event(index))
            except InvokeError as exc:
                log.warning("%s: scheduled run failed: %s", self.function.name, exc)
            with self._lock:
                self.runs += 1
            next_at = max(next_at + period, time.monotonic())
