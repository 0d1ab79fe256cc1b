"""Builds the store, queue, registry and services once per process from the settings.

Lambda keeps the process warm between invocations, so clients and the task registry
are created once and then re-used; tests pass their own pieces instead. The API and the
worker call `init()` at import time, in Lambda's init phase, so a wrong setting or a task
module that cannot be imported fails the function's init with one line, not each request.

Each function needs only part of this: the API never runs the worker, the worker never
checks API keys nor submits. Those parts are built (and their modules imported) on first
use, so neither function's cold start pays for the other's; the sweeper never imports
the task modules at all (it ships without the tasks layer and never runs a task).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from taskq import aws
from taskq.config import Settings, priority_urls, settings
from taskq.errors import ConfigError
from taskq.queue import JobQueue
from taskq.store import JobStore
from taskq.tasks import TaskRegistry, load_tasks

if TYPE_CHECKING:
    from taskq.auth import Authenticator
    from taskq.jobs import JobService
    from taskq.scheduling.periodic import ScheduleService
    from taskq.store.lines import LogLines
    from taskq.worker import Worker


@dataclass(frozen=True)
class Services:
    settings: Settings

    @cached_property
    def store(self) -> JobStore:
        """Jobs over a botocore client: the API, the sweeper, the clock and operators."""
        config = self.settings
        dynamodb = aws.client("dynamodb", config.region, config.endpoint_url)
        return JobStore(config.table_name, dynamodb, retention_days=config.retention_days)

    @cached_property
    def queue(self) -> JobQueue:
        config = self.settings
        sqs = aws.client("sqs", config.region, config.endpoint_url)
        return JobQueue(sqs, config.queue_url, config.dlq_url, priority_urls(config))

    def connect(self) -> Services:
        """Open the botocore clients now (a function's init phase) rather than on first use.
        The worker does not: its calls go through aioboto3, and the two clients it never
        used took ~60 ms of every worker cold start (measured)."""
        _ = self.store, self.queue
        return self

    @cached_property
    def registry(self) -> TaskRegistry:
        """The configured task modules, imported on first use (init() makes that the init)."""
        return load_tasks(self.settings.task_modules)

    @cached_property
    def jobs(self) -> JobService:
        from taskq.jobs import JobService

        return JobService(
            self.store,
            self.queue,
            self.registry,
            default_max_attempts=self.settings.default_max_attempts,
            direct_delay_max_s=self.settings.delay_direct_max_s,
            lines=self.log_lines,
        )

    @cached_property
    def schedules(self) -> ScheduleService:
        """The periodic schedules of the task modules: the clock fires them, operators
        list, pause, resume and trigger them."""
        from taskq.scheduling.periodic import ScheduleService
        from taskq.scheduling.state import ScheduleStates

        states = ScheduleStates(self.settings.table_name, self.store.db)
        return ScheduleService(self.jobs, states, self.registry)

    @cached_property
    def auth(self) -> Authenticator | None:
        """None: authentication is off (local development)."""
        if not self.settings.auth_required:
            return None
        if not self.settings.keys_table:
            raise ConfigError("authentication is required but no keys table is configured")
        from taskq.auth import Authenticator, KeyStore

        return Authenticator(KeyStore(self.settings.keys_table, self.store.db))

    @cached_property
    def worker(self) -> Worker:
        """The worker's own calls go through aioboto3, so a batch's records overlap."""
        from taskq.aio import AioClient
        from taskq.queue import AsyncJobQueue
        from taskq.store.aio import AsyncJobStore
        from taskq.store.lines import AsyncLineWriter
        from taskq.worker import Worker

        config = self.settings
        dynamodb = AioClient("dynamodb", config.region, config.endpoint_url)
        store = AsyncJobStore(config.table_name, dynamodb, retention_days=config.retention_days)
        lines = None
        if config.logs_table:
            lines = AsyncLineWriter(config.logs_table, dynamodb, config.retention_days)
        queue = AsyncJobQueue(
            AioClient("sqs", config.region, config.endpoint_url),
            config.queue_url,
            config.dlq_url,
            priority_urls(config),
        )
        return Worker(
            store, queue, self.registry, concurrency=config.batch_concurrency, lines=lines
        )

    @cached_property
    def log_lines(self) -> LogLines | None:
        """What tasks wrote with ctx.log, for the API, the CLI and the dashboard."""
        if not self.settings.logs_table:
            return None
        from taskq.store.lines import LogLines

        return LogLines(self.settings.logs_table, self.store.db)


def build(config: Settings) -> Services:
    """The services of these settings; each part is built on first use (or by connect())."""
    return Services(settings=config)


@lru_cache(maxsize=1)
def services() -> Services:
    return build(settings())


def init(*, sync_clients: bool = True) -> Services:
    """Build the process's services and import its task modules now: a function that runs or
    validates tasks calls this at module level, which Lambda runs once, in the init phase.
    `sync_clients=False` (the worker) leaves the botocore clients unopened.

    A missing setting, or a task module that cannot be imported or registers nothing, then
    raises ConfigError there: the init fails with that one line (in the logs on AWS, and
    `make dev` stops at start with it) instead of the function answering every request
    with a 500 while the cause sits in the log of each one.
    """
    svc = services()
    _ = svc.registry  # the import of every task module, and its checks
    return svc.connect() if sync_clients else svc
