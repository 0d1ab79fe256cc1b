"""The stack the fault tests run against: the template's, deployed as a variant whose
clock (tests/faults/timing.py) makes every kind of lateness happen within seconds, and the
direct clients and events the tests use to reach it around the chaos proxy."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from pathlib import Path
from typing import Any

import boto3

from infra.local_cloud import LocalCloud
from infra.template import FunctionSpec
from tests.faults import scheduling
from tests.faults.timing import STALE_S, VISIBILITY_S, WORKER_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER_DIR = Path(__file__).resolve().parent / "layer"  # chaos_tasks.py, shipped as a layer
# each priority's job queue, as the stack's environment names it
QUEUE_ENV = {
    "default": "TASKQ_QUEUE_URL",
    "high": "TASKQ_HIGH_QUEUE_URL",
    "low": "TASKQ_LOW_QUEUE_URL",
}


def deploy(endpoint_url: str, emulator_url: str, stage: str, log_path: Path) -> LocalCloud:
    """The template's stack on `endpoint_url` (the proxy, or the emulator), as the suite runs it.

    A variant deployment, production's template untouched: every function gets the chaos task
    layer (Lambda strips the working tree from sys.path; a layer is how code reaches it), the
    execution log's path and the suite's stale threshold; the worker its shorter timeout; the
    job queue its shorter visibility timeout (set on the queue, as an operator would).
    """

    def customize(spec: FunctionSpec) -> FunctionSpec:
        env = {
            **spec.environment,
            "TASKQ_CHAOS_LOG": str(log_path),
            "TASKQ_STALE_AFTER_SECONDS": str(STALE_S),
            **scheduling.ENV,
        }
        spec = dataclasses.replace(spec, layers=(*spec.layers, LAYER_DIR), environment=env)
        if spec.logical_id == "WorkerFunction":
            spec = dataclasses.replace(spec, timeout=WORKER_TIMEOUT_S)
        return spec

    cloud = LocalCloud(
        TEMPLATE, endpoint_url=endpoint_url, stage=stage, start_scheduler=False,
        parameters={
            "AuthMode": "off", "LogLevel": "WARNING",
            "TaskModules": "taskq.demo_tasks,chaos_tasks",
        },
        customize=customize,
    ).start()  # fmt: skip
    try:
        sqs = direct_client("sqs", emulator_url)
        for name in QUEUE_ENV.values():
            # every priority's queue: a killed batch's records come back as soon on each
            sqs.set_queue_attributes(
                QueueUrl=cloud.env[name], Attributes={"VisibilityTimeout": str(VISIBILITY_S)}
            )
    except BaseException:
        cloud.stop()
        raise
    return cloud


def direct_client(service: str, emulator_url: str) -> Any:
    """A client straight to the emulator (no faults): tests' own reads and sends."""
    make: Any = boto3.client  # typed per service by the stubs; a variable here
    return make(
        service, endpoint_url=emulator_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def scheduled_event() -> dict[str, Any]:
    """What EventBridge sends the sweeper."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-28T12:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {},
    }  # fmt: skip


def keyed_job_id(key: str) -> str:
    """The job id taskq derives from an idempotency key (tenant "default": auth is off)."""
    return hashlib.sha256(f"idempotency:default:{key}".encode()).hexdigest()[:32]
