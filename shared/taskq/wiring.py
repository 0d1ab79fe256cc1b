"""Builds the store, queue, registry and services once per process from the settings.

Lambda keeps the process warm between invocations, so clients and the task registry
are created on first use and then re-used; tests pass their own pieces instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from taskq import aws
from taskq.auth import Authenticator, KeyStore
from taskq.config import Settings, settings
from taskq.errors import ConfigError
from taskq.jobs import JobService
from taskq.queue import JobQueue
from taskq.store import JobStore
from taskq.tasks import TaskRegistry, load_tasks

if TYPE_CHECKING:
    from taskq.worker import Worker


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: JobStore
    queue: JobQueue
    registry: TaskRegistry
    jobs: JobService
    auth: Authenticator | None  # None: authentication is off (local development)

    @property
    def worker(self) -> Worker:
        # Imported here: the API never runs the worker, and the batch machinery would
        # add to every API cold start.
        from taskq.worker import Worker

        return Worker(self.store, self.queue, self.registry)


def build(config: Settings) -> Services:
    dynamodb = aws.client("dynamodb", config.region, config.endpoint_url)
    sqs = aws.client("sqs", config.region, config.endpoint_url)
    store = JobStore(config.table_name, dynamodb, retention_days=config.retention_days)
    queue = JobQueue(sqs, config.queue_url, config.dlq_url)
    registry = load_tasks(config.task_modules)
    auth = None
    if config.auth_required:
        if not config.keys_table:
            raise ConfigError("authentication is required but no keys table is configured")
        auth = Authenticator(KeyStore(config.keys_table, dynamodb))
    return Services(
        settings=config,
        store=store,
        queue=queue,
        registry=registry,
        jobs=JobService(store, queue, registry, default_max_attempts=config.default_max_attempts),
        auth=auth,
    )


@lru_cache(maxsize=1)
def services() -> Services:
    return build(settings())
