"""API Lambda: API Gateway (HTTP API 2.0 or REST 1.0 proxy) -> Mangum -> taskq's FastAPI app."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from mangum import Mangum

from taskq.api import create_app
from taskq.log import logger
from taskq.metrics import metrics
from taskq.tracing import tracer
from taskq.wiring import init

# Lambda's init phase: settings, clients and the task modules (payloads are validated against
# their models) now, so a module that cannot be imported fails the init with one line,
# rather than the function starting and answering each request with a 500.
init()
app = create_app()
_adapter = Mangum(app, lifespan="off")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry job payloads
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return dict(_adapter(event, context))
