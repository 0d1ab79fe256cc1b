"""Clock Lambda (every minute): wakes delayed jobs due soon and fires periodic schedules."""

from __future__ import annotations

from typing import Any

from taskq.log import logger
from taskq.metrics import metrics
from taskq.scheduling.clock import tick
from taskq.tracing import tracer
from taskq.wiring import init

# Lambda's init phase: settings, clients and the task modules (their schedules), so a
# malformed schedule fails the init with its one line.
init()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    svc = init()
    return tick(svc.store, svc.queue, svc.schedules, lookahead_s=svc.settings.clock_lookahead_s)
