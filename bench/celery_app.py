"""The comparison: the same no-op job on Celery, as a user of AWS would set it up.

SQS broker (kombu's SQS transport, long polling, predefined queue) and the DynamoDB result
backend with `task_track_started`, so a job has a stored status (started, then success)
as a taskq job has. Configured from the environment by `bench.compare`; never imported
by taskq itself.
"""

from __future__ import annotations

import os

from celery import Celery

BROKER_ENV = "BENCH_CELERY_BROKER"
BACKEND_ENV = "BENCH_CELERY_BACKEND"
QUEUE_ENV = "BENCH_CELERY_QUEUE"
QUEUE_URL_ENV = "BENCH_CELERY_QUEUE_URL"

app = Celery("taskq_bench")
app.conf.update(
    broker_url=os.environ.get(BROKER_ENV, "memory://"),
    result_backend=os.environ.get(BACKEND_ENV) or None,
    task_default_queue=os.environ.get(QUEUE_ENV, "celery"),
    broker_transport_options={
        "region": "us-east-1",
        "is_secure": False,
        "wait_time_seconds": 1,  # the local poller's long-poll wait
        "polling_interval": 0,
        "visibility_timeout": 190,  # the template's
        "predefined_queues": {
            os.environ.get(QUEUE_ENV, "celery"): {
                "url": os.environ.get(QUEUE_URL_ENV, ""),
                "access_key_id": "testing",
                "secret_access_key": "testing",
            }
        },
    },
    broker_connection_retry_on_startup=True,
    task_track_started=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


@app.task(name="noop")  # type: ignore[untyped-decorator]  # celery ships no type hints
def noop() -> None:
    """Does nothing, like the bench's taskq `noop`."""
