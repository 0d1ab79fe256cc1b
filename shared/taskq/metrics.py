"""Job metrics as CloudWatch embedded metric format (EMF): one Powertools Metrics instance.

The handlers flush it once per invocation (`@metrics.log_metrics`); CloudWatch turns the
JSON log lines into metrics in the POWERTOOLS_METRICS_NAMESPACE namespace, dimension
`service`. Counts: JobsSubmitted, JobsCompleted, JobsRetried, JobsFailed; JobDuration is
the milliseconds a completed attempt ran.

Only a Lambda process (AWS_LAMBDA_FUNCTION_NAME set: Lambda, `sam local`, the local
sandboxes) records anything: a CLI command or a test has no log that CloudWatch reads, and
EMF lines printed there would only garble its output.
"""

from __future__ import annotations

import os
import threading

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "taskq"
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "taskq"


class _Provider(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider, silent when an invocation recorded nothing.

    Most API calls submit no job; Powertools would warn "No application metrics to publish"
    after each of them (noise in the log, and an error under pytest's warnings-as-errors).
    """

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        if self.metric_set or raise_on_empty_metrics:
            super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)


metrics = Metrics(provider=_Provider(namespace=NAMESPACE, service=SERVICE))
_lock = threading.Lock()  # the metric set is one dict; a local API serves requests on threads


def recording() -> bool:
    """True inside a Lambda process, the only place whose stdout CloudWatch reads as EMF."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def jobs_submitted(count: int = 1) -> None:
    """New jobs stored (an idempotent replay is not a new job)."""
    if count > 0:
        _add("JobsSubmitted", MetricUnit.Count, count)


def job_completed(duration_s: float) -> None:
    _add("JobsCompleted", MetricUnit.Count, 1)
    _add("JobDuration", MetricUnit.Milliseconds, round(max(duration_s, 0.0) * 1000, 1))


def job_retried() -> None:
    _add("JobsRetried", MetricUnit.Count, 1)


def job_failed() -> None:
    """A job ended failed, its message bound for the dead-letter queue."""
    _add("JobsFailed", MetricUnit.Count, 1)


def _add(name: str, unit: MetricUnit, value: float) -> None:
    if recording():
        with _lock:
            metrics.add_metric(name=name, unit=unit, value=value)
