"""Sweeper Lambda (scheduled): re-sends jobs that were stored but never sent, or abandoned."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from taskq.log import logger
from taskq.metrics import metrics
from taskq.sweeper import sweep
from taskq.tracing import tracer
from taskq.wiring import services

# Lambda's init phase: settings and clients now (a missing setting fails the init). Not the
# task modules: the sweeper never runs a task, and ships without the tasks layer.
services().connect()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    svc = services()
    report = sweep(svc.store, svc.queue, stale_after_s=svc.settings.stale_after_s)
    logger.info("sweep finished", extra=asdict(report))
    return asdict(report)
