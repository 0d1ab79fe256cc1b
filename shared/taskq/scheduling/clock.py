"""The clock's tick (every minute on AWS, from an EventBridge rule): wake the delayed jobs
due soon, and create the jobs of the periodic schedules' coming fires. Both are idempotent,
so a tick retried, run twice or run by two clocks at once changes nothing more."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from taskq.log import logger
from taskq.queue import JobQueue
from taskq.scheduling.delays import promote_due
from taskq.scheduling.periodic import ScheduleService
from taskq.store import JobStore


def tick(
    store: JobStore, queue: JobQueue, schedules: ScheduleService, *, lookahead_s: int
) -> dict[str, Any]:
    woken = promote_due(store, queue, time.time(), lookahead_s)
    fired = schedules.fire_due(lookahead_s)
    report = {"delayed": asdict(woken), "periodic": asdict(fired)}
    logger.info("clock tick", extra=report)
    return report
