"""What one `taskq` invocation works with: its settings, services, consoles and actor.

The settings come from the environment the functions use, or from a CloudFormation
stack's outputs (--stack); the services are built by the composition root
(`taskq.wiring`), like the functions', so the CLI changes jobs the way the API does.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from taskq import aws, wiring
from taskq.auth import KeyStore
from taskq.cli.render import make_console
from taskq.config import Env, Settings
from taskq.dlq import DeadLetters
from taskq.errors import BackendError, ConfigError
from taskq.jobs import JobService

# template.yaml's Outputs, by the variable each one fills.
STACK_OUTPUTS = {
    Env.TABLE: "JobsTableName",
    Env.KEYS_TABLE: "ApiKeysTableName",
    Env.QUEUE_URL: "JobQueueUrl",
    Env.DLQ_URL: "DeadLetterQueueUrl",
}
# Outputs a stack deployed before priorities lacks (its one queue then serves them all),
# or before job logs (then there are none to show).
OPTIONAL_OUTPUTS = {
    Env.HIGH_QUEUE_URL: "HighPriorityQueueUrl",
    Env.LOW_QUEUE_URL: "LowPriorityQueueUrl",
    Env.LOGS_TABLE: "JobLogsTableName",  # and before job logs
}


class CommandFailed(Exception):
    """The command has already said what went wrong (a waited job failed, a redrive left
    work undone): exit 1 without another error line."""


def settings_from(env: Mapping[str, str], stack: str | None = None) -> Settings:
    """Settings from the environment, with the resource names from `stack` when given."""
    if stack:
        env = {**env, **stack_names(stack, env)}
    missing = [name for name in Env.REQUIRED if not env.get(name)]
    if missing:
        raise ConfigError(
            f"missing environment variable(s): {', '.join(missing)} "
            "(run make dev, or export the names from its banner; or pass --stack NAME)"
        )
    if not env.get(Env.KEYS_TABLE):
        # API keys guard the HTTP API; the CLI goes to DynamoDB and SQS with the
        # operator's own AWS credentials, so it needs no keys table.
        env = {**env, Env.AUTH: "off"}
    return Settings.from_env(env)


def stack_names(stack: str, env: Mapping[str, str], cloudformation: Any = None) -> dict[str, str]:
    """The table and queue names from a deployed stack's outputs (DescribeStacks)."""
    region = env.get(Env.REGION) or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = cloudformation or aws.client(
        "cloudformation", region, env.get(Env.ENDPOINT_URL) or None
    )
    try:
        stacks = client.describe_stacks(StackName=stack).get("Stacks", [])
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError":  # how CloudFormation says "no such stack"
            raise ConfigError(f"stack {stack!r}: {error.get('Message', 'not found')}") from None
        raise BackendError(f"CloudFormation describe_stacks failed: {error.get('Code')}") from exc
    except BotoCoreError as exc:
        raise BackendError(f"CloudFormation describe_stacks failed: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for s in stacks[:1] for o in s.get("Outputs") or []}
    missing = [key for key in STACK_OUTPUTS.values() if key not in outputs]
    if missing:
        raise ConfigError(f"stack {stack!r} has no output(s) {', '.join(missing)}")
    found = {name: outputs[key] for name, key in STACK_OUTPUTS.items()}
    return found | {name: outputs[key] for name, key in OPTIONAL_OUTPUTS.items() if key in outputs}


def default_actor(tool: str = "taskq cli") -> str:
    """Who to name in job histories and audit records when --actor is not given: the
    person, the machine, and the tool they used (the CLI, or `taskq dashboard`)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()} ({tool})"


@dataclass
class OperatorContext:
    """What a command needs, built on first use: a bad environment fails only commands
    that touch AWS, never `--help`."""

    env: Mapping[str, str]
    stack: str | None
    actor: str
    actor_given: bool = False  # --actor or TASKQ_ACTOR: used as is, by the dashboard too
    out: Console = field(default_factory=lambda: make_console(stderr=False))
    err: Console = field(default_factory=lambda: make_console(stderr=True))

    @classmethod
    def of(cls, ctx: typer.Context) -> OperatorContext:
        """The context the root callback stored for this invocation."""
        operator = ctx.find_root().obj
        assert isinstance(operator, cls)
        return operator

    @cached_property
    def settings(self) -> Settings:
        """Read on first use, so --help and usage errors never need the environment."""
        return settings_from(self.env, self.stack)

    @cached_property
    def services(self) -> wiring.Services:
        """Store, queue, task registry and job service, built as the functions build them."""
        return wiring.build(self.settings)

    @property
    def jobs(self) -> JobService:
        """Every job read and change goes through here, as the API's do."""
        return self.services.jobs

    @cached_property
    def dead(self) -> DeadLetters:
        """The DLQ operations, over the same store and queue as the job service."""
        return DeadLetters(self.services.store, self.services.queue)

    @cached_property
    def keys(self) -> KeyStore:
        """The API keys table; only `keys` commands need it, so only they ask for it."""
        keys_table = self.settings.keys_table
        if not keys_table:
            raise ConfigError(
                f"missing environment variable {Env.KEYS_TABLE} (the API keys table; "
                "make dev's .dev/env and --stack both set it)"
            )
        return KeyStore(keys_table, self.services.store.db)
