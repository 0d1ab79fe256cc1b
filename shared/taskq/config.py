"""Settings from the environment: the names of the table and queues, and limits.

Lambda sets these from template.yaml; the local runners and the CLI set the same
variables, so one reader serves every place taskq runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from taskq.errors import ConfigError
from taskq.models import Priority

DEFAULT_TASK_MODULES = ("taskq.demo_tasks",)


class Env:
    """The environment variables taskq reads: one spelling for the functions and the CLI."""

    TABLE = "TASKQ_TABLE"
    QUEUE_URL = "TASKQ_QUEUE_URL"  # the default priority's job queue
    HIGH_QUEUE_URL = "TASKQ_HIGH_QUEUE_URL"
    LOW_QUEUE_URL = "TASKQ_LOW_QUEUE_URL"
    DLQ_URL = "TASKQ_DLQ_URL"
    KEYS_TABLE = "TASKQ_KEYS_TABLE"
    LOGS_TABLE = "TASKQ_LOGS_TABLE"  # ctx.log's lines; unset: they go to CloudWatch only
    AUTH = "TASKQ_AUTH"
    TASK_MODULES = "TASKQ_TASK_MODULES"
    RETENTION_DAYS = "TASKQ_RETENTION_DAYS"
    DEFAULT_MAX_ATTEMPTS = "TASKQ_DEFAULT_MAX_ATTEMPTS"
    STALE_AFTER_SECONDS = "TASKQ_STALE_AFTER_SECONDS"
    BATCH_CONCURRENCY = "TASKQ_BATCH_CONCURRENCY"
    DELAY_DIRECT_MAX_SECONDS = "TASKQ_DELAY_DIRECT_MAX_SECONDS"
    CLOCK_LOOKAHEAD_SECONDS = "TASKQ_CLOCK_LOOKAHEAD_SECONDS"
    STACK = "TASKQ_STACK"
    ACTOR = "TASKQ_ACTOR"
    DASHBOARD_TOKEN = "TASKQ_DASHBOARD_TOKEN"  # noqa: S105 (the variable's name, not a token)
    ENDPOINT_URL = "AWS_ENDPOINT_URL"
    REGION = "AWS_REGION"
    REQUIRED = (TABLE, QUEUE_URL, DLQ_URL)


MAX_ATTEMPTS_LIMIT = 10  # the queue's maxReceiveCount (12) stays above this


@dataclass(frozen=True)
class Settings:
    table_name: str
    queue_url: str
    dlq_url: str
    high_queue_url: str | None = None  # None: high-priority jobs share the default queue
    low_queue_url: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    task_modules: tuple[str, ...] = DEFAULT_TASK_MODULES
    retention_days: int = 14
    default_max_attempts: int = 3
    stale_after_s: int = 300  # a pending job this old, never claimed, is re-sent by the sweeper
    auth_required: bool = True  # production default; `make dev` turns it off, loudly
    keys_table: str | None = None
    logs_table: str | None = None
    batch_concurrency: int = 10  # records of one SQS batch in flight at once (the worker)
    # A delay up to this rides on the SQS message (DelaySeconds); longer ones wait in the
    # due index for the clock. Tests lower it to see the index path without waiting.
    delay_direct_max_s: int = 900
    # How far ahead each clock tick sends wake-ups and creates periodic fires: above the
    # clock's period (60 s on AWS), at most SQS's 900 s delay.
    clock_lookahead_s: int = 180

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [n for n in Env.REQUIRED if not env.get(n)]
        if missing:
            raise ConfigError(f"missing environment variable(s): {', '.join(missing)}")
        auth = env.get(Env.AUTH, "required")
        if auth not in ("required", "off"):
            raise ConfigError(f"{Env.AUTH} must be 'required' or 'off', got {auth!r}")
        if auth == "required" and not env.get(Env.KEYS_TABLE):
            raise ConfigError(f"{Env.AUTH}=required needs {Env.KEYS_TABLE}")
        modules = tuple(m.strip() for m in env.get(Env.TASK_MODULES, "").split(",") if m.strip())
        return cls(
            table_name=env[Env.TABLE],
            queue_url=env[Env.QUEUE_URL],
            high_queue_url=env.get(Env.HIGH_QUEUE_URL) or None,
            low_queue_url=env.get(Env.LOW_QUEUE_URL) or None,
            dlq_url=env[Env.DLQ_URL],
            region=env.get(Env.REGION) or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=env.get(Env.ENDPOINT_URL) or None,
            task_modules=modules or DEFAULT_TASK_MODULES,
            retention_days=_int(env, Env.RETENTION_DAYS, 14, low=1, high=3650),
            default_max_attempts=_int(
                env, Env.DEFAULT_MAX_ATTEMPTS, 3, low=1, high=MAX_ATTEMPTS_LIMIT
            ),
            stale_after_s=_int(env, Env.STALE_AFTER_SECONDS, 300, low=1, high=86400),
            auth_required=auth == "required",
            keys_table=env.get(Env.KEYS_TABLE) or None,
            logs_table=env.get(Env.LOGS_TABLE) or None,
            batch_concurrency=_int(env, Env.BATCH_CONCURRENCY, 10, low=1, high=100),
            delay_direct_max_s=_int(env, Env.DELAY_DIRECT_MAX_SECONDS, 900, low=0, high=900),
            clock_lookahead_s=_int(env, Env.CLOCK_LOOKAHEAD_SECONDS, 180, low=1, high=900),
        )


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def priority_urls(config: Settings) -> dict[Priority, str]:
    """The job queues of the priorities other than the default, as configured."""
    urls = {Priority.HIGH: config.high_queue_url, Priority.LOW: config.low_queue_url}
    return {priority: url for priority, url in urls.items() if url}


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process's settings, read once (Lambda re-uses the process)."""
    return Settings.from_env()
