"""Worker Lambda: an SQS batch in, a partial batch response (ReportBatchItemFailures) out."""

from __future__ import annotations

from typing import Any

# Loaded during Lambda's init phase rather than on the first batch (wiring imports lazily).
import taskq.worker  # noqa: F401
from taskq.log import logger
from taskq.metrics import metrics
from taskq.tracing import tracer
from taskq.wiring import init, services

# Lambda's init phase: settings and the task modules now, so a task module that cannot be
# imported (or registers nothing) fails the init with one line, not every batch. No botocore
# clients: the worker's calls go through aioboto3, opened by the first batch.
init(sync_clients=False)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return services().worker.handle_batch(event, context)
