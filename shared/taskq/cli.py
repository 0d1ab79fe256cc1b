"""The `taskq` command: the operator's view of jobs and of the dead-letter queue.

It finds the table and queues the way the functions do (TASKQ_TABLE, TASKQ_QUEUE_URL,
TASKQ_DLQ_URL, AWS_ENDPOINT_URL, AWS_REGION), or from a CloudFormation stack's outputs
(--stack). Every change of job status goes through the store (taskq.store) or the
DLQ operations built on it (taskq.dlq); nothing here writes a status itself.

People get tables and progress bars (on stderr, only on a terminal); scripts pass
--json and read stdout. Expected failures are one line on stderr and an exit code
from the small scheme in EXIT_CODES, never a traceback.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from taskq import aws
from taskq.auth import ApiKey, KeyStore
from taskq.config import Settings
from taskq.dlq import Action, AuditRecord, DeadEntry, DeadLetters, Outcome, Report, Selector
from taskq.errors import (
    BackendError,
    ConfigError,
    Conflict,
    InvalidRequest,
    JobNotFound,
    TaskqError,
)
from taskq.models import (
    DEFAULT_TENANT,
    IDEMPOTENCY_KEY_PATTERN,
    TERMINAL,
    EventsOut,
    Job,
    JobOut,
    JobRequest,
    Status,
    is_job_id,
)
from taskq.queue import JobQueue
from taskq.store import LIST_LIMIT_MAX, JobStore

EXIT_OK = 0
EXIT_FAILED = 1  # not found, refused by the job's state, a waited job failed, work left undone
EXIT_USAGE = 2  # bad arguments or configuration
EXIT_BACKEND = 3  # AWS (or the emulator) unreachable or failing
EXIT_INTERRUPTED = 130

EXIT_CODES = (
    "Exit codes: 0 success; 1 not found, refused by the job's state, job failed, "
    "or messages left undone (see the summary); 2 bad arguments or configuration; "
    "3 AWS or the emulator unreachable or failing; 130 interrupted."
)
ENV_NAMES = ("TASKQ_TABLE", "TASKQ_QUEUE_URL", "TASKQ_DLQ_URL")
# template.yaml's Outputs, by the variable each one fills.
STACK_OUTPUTS = {
    "TASKQ_TABLE": "JobsTableName",
    "TASKQ_KEYS_TABLE": "ApiKeysTableName",
    "TASKQ_QUEUE_URL": "JobQueueUrl",
    "TASKQ_DLQ_URL": "DeadLetterQueueUrl",
}
WAIT_POLL_S = (0.2, 1.0)  # --wait polls from the first to the second interval, doubling
MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
SHOW_ROWS = 50  # rows of a redrive/purge summary shown to people (all of them in --json)


class UsageProblem(TaskqError):
    """The command line asks for something that cannot work (exit 2)."""


# --- configuration -----------------------------------------------------------------


def settings_from(env: Mapping[str, str], stack: str | None = None) -> Settings:
    """Settings from the environment, with the resource names from `stack` when given."""
    if stack:
        env = {**env, **stack_names(stack, env)}
    missing = [name for name in ENV_NAMES if not env.get(name)]
    if missing:
        raise ConfigError(
            f"missing environment variable(s): {', '.join(missing)} "
            "(run make dev, or export the names from its banner; or pass --stack NAME)"
        )
    if not env.get("TASKQ_KEYS_TABLE"):
        # API keys guard the HTTP API; the CLI goes to DynamoDB and SQS with the
        # operator's own AWS credentials, so it needs no keys table.
        env = {**env, "TASKQ_AUTH": "off"}
    return Settings.from_env(env)


def stack_names(stack: str, env: Mapping[str, str], cloudformation: Any = None) -> dict[str, str]:
    """The table and queue names from a deployed stack's outputs (DescribeStacks)."""
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = cloudformation or aws.client(
        "cloudformation", region, env.get("AWS_ENDPOINT_URL") or None
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
    return {name: outputs[key] for name, key in STACK_OUTPUTS.items()}


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()} (taskq cli)"


@dataclass
class Backend:
    """What a command needs, built on first use: a bad environment fails only commands
    that touch AWS, never `--help`."""

    env: Mapping[str, str]
    stack: str | None
    actor: str
    out: Console = field(default_factory=lambda: _console(stderr=False))
    err: Console = field(default_factory=lambda: _console(stderr=True))

    @cached_property
    def settings(self) -> Settings:
        return settings_from(self.env, self.stack)

    @cached_property
    def store(self) -> JobStore:
        s = self.settings
        dynamodb = aws.client("dynamodb", s.region, s.endpoint_url)
        return JobStore(s.table_name, dynamodb, retention_days=s.retention_days)

    @cached_property
    def queue(self) -> JobQueue:
        s = self.settings
        return JobQueue(aws.client("sqs", s.region, s.endpoint_url), s.queue_url, s.dlq_url)

    @cached_property
    def dead(self) -> DeadLetters:
        return DeadLetters(self.store, self.queue)

    @cached_property
    def keys(self) -> KeyStore:
        s = self.settings
        if not s.keys_table:
            raise ConfigError(
                "missing environment variable TASKQ_KEYS_TABLE (the API keys table; "
                "make dev's .dev/env and --stack both set it)"
            )
        return KeyStore(s.keys_table, aws.client("dynamodb", s.region, s.endpoint_url))


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # piped: wide enough that ids are never cut
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


# --- argument types ---------------------------------------------------------------


_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS = (86_400, 3_600, 60, 1)


def parse_duration(text: str) -> float:
    """'30s', '15m', '2h', '7d' (or a combination such as '1h30m') in seconds."""
    match = _DURATION_RE.match(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration (use 30s, 15m, 2h or 7d)")
    return float(sum(int(g or 0) * u for g, u in zip(match.groups(), _DURATION_UNITS, strict=True)))


def _duration(option: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None

    return parse


def _regex(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error as exc:
        raise typer.BadParameter(
            f"{value!r} is not a regular expression: {exc}", param_hint="'--error-match'"
        ) from None


def parse_payload(text: str | None, stdin: Callable[[], str] | None = None) -> dict[str, Any]:
    """--payload: a JSON object inline, `@file`, or `@-` for stdin."""
    if text is None:
        return {}
    what = "--payload"
    if text.startswith("@"):
        path = text[1:]
        what = f"--payload {text}"
        try:
            text = (stdin or sys.stdin.read)() if path == "-" else Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageProblem(f"cannot read --payload file {path!r}: {_reason(exc)}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageProblem(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageProblem(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def make_selector(
    ids: list[str],
    task: str | None,
    error_match: re.Pattern[str] | None,
    older_than: float | None,
    newer_than: float | None,
    everything: bool,
    *,
    required: bool,
) -> Selector:
    """The DLQ selector from the options; a changing command must say what it takes."""
    for ident in ids:
        if not (is_job_id(ident) or MESSAGE_ID_RE.match(ident)):
            raise UsageProblem(f"--id {ident!r} is neither a job id nor a DLQ message id")
    selector = Selector(
        ids=frozenset(ids),
        task=task,
        error_match=error_match,
        older_than_s=older_than,
        newer_than_s=newer_than,
        everything=everything,
    )
    if everything and selector.has_criteria:
        raise UsageProblem("--all takes every message: do not combine it with other selectors")
    if required and not everything and not selector.has_criteria:
        raise UsageProblem(
            "say which messages: --id, --task, --error-match, --older-than, --newer-than, or --all"
        )
    if older_than is not None and newer_than is not None and newer_than <= older_than:
        raise UsageProblem("--newer-than must be longer than --older-than, or nothing matches")
    return selector


# --- the app ----------------------------------------------------------------------

app = typer.Typer(
    name="taskq",
    help="Operate taskq: submit and inspect jobs, read stats, redrive the dead-letter queue.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # reflows docstring paragraphs to the terminal's width
    context_settings={"help_option_names": ["-h", "--help"]},
)
jobs_app = typer.Typer(
    help="List jobs.", no_args_is_help=True, epilog=EXIT_CODES, rich_markup_mode="markdown"
)
dlq_app = typer.Typer(
    help="The dead-letter queue: list, show, redrive and purge failed jobs' messages.",
    no_args_is_help=True,
    epilog=EXIT_CODES,
    rich_markup_mode="markdown",
)
keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke. Keys are stored only as hashes.",
    no_args_is_help=True,
    epilog=EXIT_CODES,
    rich_markup_mode="markdown",
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_app, name="keys")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts).")]
JobIdArg = Annotated[str, typer.Argument(metavar="ID", help="The job id (32 hex characters).")]
IdsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--id",
        metavar="ID",
        help="A job id or DLQ message id; repeat for several.",
        show_default=False,
    ),
]
TaskOpt = Annotated[
    str | None, typer.Option("--task", metavar="TASK", help="Only this task's messages.")
]
ErrorOpt = Annotated[
    re.Pattern[str] | None,
    typer.Option(
        "--error-match",
        parser=_regex,
        metavar="REGEX",
        help="Only messages whose last error matches this regular expression.",
    ),
]
OlderOpt = Annotated[
    float | None,
    typer.Option(
        "--older-than",
        parser=_duration("--older-than"),
        metavar="DURATION",
        help="Failed at least this long ago (15m, 2h).",
    ),
]
NewerOpt = Annotated[
    float | None,
    typer.Option(
        "--newer-than",
        parser=_duration("--newer-than"),
        metavar="DURATION",
        help="Failed at most this long ago (30s, 7d).",
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every message (when no selector is given).")]
MaxOpt = Annotated[
    int | None, typer.Option("--max", min=1, help="Take at most this many messages.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@app.callback()
def root(
    ctx: typer.Context,
    stack: Annotated[
        str | None,
        typer.Option(
            "--stack",
            envvar="TASKQ_STACK",
            help="Find the table and queues from this CloudFormation stack's outputs.",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            envvar="TASKQ_ACTOR",
            help="Who to record in job histories and audit records (default: user@host).",
        ),
    ] = None,
) -> None:
    """Operate taskq from a terminal.

    Configuration comes from the environment the functions use: TASKQ_TABLE,
    TASKQ_QUEUE_URL, TASKQ_DLQ_URL, AWS_ENDPOINT_URL (moto, LocalStack) and AWS_REGION.
    """
    ctx.obj = Backend(env=dict(os.environ), stack=stack, actor=actor or default_actor())


def _backend(ctx: typer.Context) -> Backend:
    backend = ctx.find_root().obj
    assert isinstance(backend, Backend)
    return backend


# --- jobs ---------------------------------------------------------------------------


@app.command()
def submit(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="A registered task's name (e.g. echo, fail).")],
    payload: Annotated[
        str | None,
        typer.Option("--payload", "-p", help="The payload: a JSON object, @file, or @- (stdin)."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", help="Same key and payload: the same job, not a new one."
        ),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", min=1, max=10, help="Override the budget.")
    ] = None,
    tenant: Annotated[
        str, typer.Option("--tenant", metavar="TENANT", help="The tenant the job belongs to.")
    ] = DEFAULT_TENANT,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the job finishes.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds --wait waits at most.")
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job (validated against the task's payload model), optionally waiting for it."""
    from taskq.jobs import JobService
    from taskq.tasks import load_tasks

    if idempotency_key is not None and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, idempotency_key):
        raise UsageProblem("--idempotency-key must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    body = parse_payload(payload)
    try:
        request = JobRequest(task=task, payload=body, max_attempts=max_attempts)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageProblem(f"{where}: {first['msg']}") from None
    b = _backend(ctx)
    service = JobService(
        b.store,
        b.queue,
        load_tasks(b.settings.task_modules),
        default_max_attempts=b.settings.default_max_attempts,
    )
    submitted = service.submit(request, idempotency_key, tenant)
    job = submitted.job
    if not wait:
        note = "(made by an earlier submit with this key)" if submitted.replayed else ""
        _show_job(b, job, as_json, note=note)
        return
    job = _wait(b, job, timeout)
    _show_job(b, job, as_json)
    if job.status != Status.COMPLETED:
        raise typer.Exit(EXIT_FAILED)


def _wait(b: Backend, job: Job, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    interval = WAIT_POLL_S[0]
    with _spinner(b, f"waiting for job {job.id}") as update:
        while job.status not in TERMINAL:
            if time.monotonic() >= deadline:
                b.err.print(
                    f"taskq: job {job.id} is still {job.status} after {timeout:g} s", markup=False
                )
                _show_job(b, job, False)
                raise typer.Exit(EXIT_FAILED)
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, WAIT_POLL_S[1])
            job = b.store.get(job.id)
            update(f"job {job.id}: {job.status}, attempt {job.attempt}/{job.max_attempts}")
    return job


@app.command()
def status(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """Show one job."""
    job_id = _job_id(job_id)
    b = _backend(ctx)
    _show_job(b, b.store.get(job_id), as_json)


@app.command()
def events(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """Show a job's history: every transition, attempt, error and redrive."""
    job_id = _job_id(job_id)
    b = _backend(ctx)
    job = b.store.get(job_id)
    if as_json:
        _json(EventsOut(job_id=job.id, events=list(job.events)).model_dump(mode="json"))
        return
    table = Table(title=f"job {job.id} ({job.task}, {job.status})", title_justify="left")
    for name in ("#", "event", "attempt", "at", "error / detail"):
        table.add_column(name, overflow="fold")
    for n, event in enumerate(job.events, 1):
        table.add_row(
            str(n),
            event.kind,
            str(event.attempt),
            _when(event.at.timestamp()),
            " ".join(x for x in (event.error, event.detail, _delay(event.delay_s)) if x),
        )
    b.out.print(table)


@jobs_app.command("ls")
def jobs_ls(
    ctx: typer.Context,
    status: Annotated[
        Status | None, typer.Option("--status", help="Only jobs in this status.")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only this task's jobs.")] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="TENANT", help="Only this tenant's jobs.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=LIST_LIMIT_MAX)] = 20,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue a listing (its next cursor).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first (a Query on the status or task index; never a Scan)."""
    b = _backend(ctx)
    next_cursor: str | None = None
    if status is None and task is None:
        if cursor:
            raise UsageProblem("--cursor continues a listing by --status or --task")
        found: list[Job] = []
        for each in Status:  # one Query per status, merged: still no Scan
            found += b.store.list_jobs(tenant=tenant, status=each, limit=limit)[0]
        jobs = sorted(found, key=lambda j: j.created_at, reverse=True)[:limit]
    else:
        jobs, next_cursor = b.store.list_jobs(
            tenant=tenant, status=status, task=task, limit=limit, cursor=cursor
        )
    if as_json:
        _json({"items": [_job_json(j) for j in jobs], "next_cursor": next_cursor})
        return
    table = Table(box=None, pad_edge=False)
    for name in ("id", "task", "status", "attempts", "created", "error"):
        table.add_column(name, no_wrap=name == "id", overflow="fold")
    for job in jobs:
        table.add_row(
            job.id,
            job.task,
            job.status,
            f"{job.attempt}/{job.max_attempts}",
            _when(job.created_at.timestamp()),
            _clip(job.error),
        )
    b.out.print(table)
    if next_cursor:
        b.err.print(f"more: --cursor {next_cursor}", markup=False)


@app.command()
def cancel(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """Cancel a pending or retrying job (a running one cannot be: exit 1)."""
    job_id = _job_id(job_id)
    b = _backend(ctx)
    _show_job(b, b.store.cancel(job_id), as_json)


@app.command()
def stats(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Jobs by status, queue depth and in-flight, DLQ depth and its oldest message's age."""
    from taskq.stats import collect

    b = _backend(ctx)
    figures = collect(b.dead)
    if as_json:
        _json(figures.to_dict())
        return
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, count in figures.jobs.items():
        table.add_row(f"jobs {name}", str(count))
    table.add_row("queue visible", str(figures.queue["visible"]))
    table.add_row("queue in flight", str(figures.queue["in_flight"]))
    table.add_row("queue delayed", str(figures.queue["delayed"]))
    table.add_row("DLQ depth", str(figures.dlq["visible"] + figures.dlq["in_flight"]))
    age = figures.oldest_dlq_age_s
    oldest = "-" if age is None else _span(age) + ("" if figures.oldest_dlq_age_exact else "+")
    table.add_row("DLQ oldest message", oldest)
    b.out.print(table)


# --- keys ---------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant the key's jobs belong to.")],
    name: Annotated[str, typer.Option(help="What the key is for (e.g. ci, billing-service).")],
    as_json: JsonOpt = False,
) -> None:
    """Create an API key. It is printed once, now: store it; taskq keeps only its hash."""
    record, key = _backend(ctx).keys.create(tenant, name)
    if as_json:
        _json({**_key_row(record), "key": key})
        return
    b = _backend(ctx)
    b.out.print(key)
    b.err.print(f"key {record.key_id} for tenant {record.tenant}: shown once, store it now")


@keys_app.command("ls")
def keys_ls(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List API keys (never the keys themselves)."""
    b = _backend(ctx)
    rows = [_key_row(k) for k in b.keys.list(tenant)]
    if as_json:
        _json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("key_id", "tenant", "name", "created_at", "revoked_at"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c] or "-") for c in ("key_id", "tenant", "name", "created_at",
                                                       "revoked_at")))  # fmt: skip
    b.out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key id (16 hex).")],
) -> None:
    """Revoke a key; API processes stop accepting it within 30 s (their cache)."""
    if not re.fullmatch(r"[0-9a-f]{16}", key_id):
        raise UsageProblem(f"{key_id!r} is not a key id (16 hex characters; see taskq keys ls)")
    if not _backend(ctx).keys.revoke(key_id):
        raise JobNotFound(f"no active key {key_id} (unknown, or revoked already)")
    _backend(ctx).err.print(f"key {key_id} revoked")


def _key_row(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "name": key.name,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


# --- dlq ----------------------------------------------------------------------------


@dlq_app.command("ls")
def dlq_ls(
    ctx: typer.Context,
    ids: IdsOpt = None,
    task: TaskOpt = None,
    error_match: ErrorOpt = None,
    older_than: OlderOpt = None,
    newer_than: NewerOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """One row per DLQ message: job, task, attempts, last error, when it failed.

    Messages whose job is missing or whose body is not a job message are listed too,
    marked as orphans. Listing receives the messages and makes them visible again.
    """
    selector = make_selector(
        ids or [], task, error_match, older_than, newer_than, False, required=False
    )
    b = _backend(ctx)
    scan = b.dead.list_messages(selector, limit=limit)
    if as_json:
        _json(
            {
                "messages": [e.to_dict() for e in scan.entries],
                "scanned": scan.seen,
                "truncated": scan.truncated,
            }
        )
        return
    if not scan.entries:
        b.err.print(f"no matching DLQ messages ({scan.seen} looked at)", markup=False)
        return
    table = Table(box=None, pad_edge=False)
    for name in ("job id", "task", "status", "attempts", "failed", "last error", "message id"):
        table.add_column(name, no_wrap=name in ("job id", "message id"), overflow="fold")
    for entry in scan.entries:
        orphan = entry.kind == "orphan"
        job = entry.job
        table.add_row(
            entry.job_id or "-",
            entry.task or "-",
            "orphan" if orphan else str(entry.status),
            f"{job.attempt}/{job.max_attempts}" if job else _or_dash(entry.attempts),
            _when(entry.failed_at),
            _clip(entry.orphan_reason if orphan else entry.error),
            entry.message_id,
        )
    b.out.print(table)
    more = " (more not shown: raise --limit)" if scan.truncated else ""
    b.err.print(f"{len(scan.entries)} message(s){more}", markup=False)


@dlq_app.command("show")
def dlq_show(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="ID", help="A job id or a DLQ message id.")],
    as_json: JsonOpt = False,
) -> None:
    """A DLQ message in full: its job, the job's events and the raw message."""
    if not (is_job_id(ident) or MESSAGE_ID_RE.match(ident)):
        raise UsageProblem(f"{ident!r} is neither a job id nor a DLQ message id")
    b = _backend(ctx)
    entry = b.dead.show(ident)
    job = entry.job if entry else (b.store.find(ident) if is_job_id(ident) else None)
    if entry is None and job is None:
        raise JobNotFound(f"no DLQ message or job with id {ident}")
    if as_json:
        _json(
            {
                "message": None if entry is None else _raw_message(entry),
                "entry": None if entry is None else entry.to_dict(),
                "job": None if job is None else _job_json(job),
                "events": [] if job is None else [e.model_dump(mode="json") for e in job.events],
            }
        )
        if entry is None:
            raise typer.Exit(EXIT_FAILED)
        return
    if entry is not None:
        b.out.print("DLQ message", style="bold")
        info = Table(box=None, pad_edge=False, show_header=False)
        info.add_column("field", style="bold")
        info.add_column("value", overflow="fold")
        for name, value in _raw_message(entry).items():
            text = value if isinstance(value, str) else json.dumps(value)
            info.add_row(name, text)
        if entry.kind == "orphan":
            info.add_row("orphan", entry.orphan_reason or "")
        b.out.print(info)
    if job is not None:
        b.out.print("job", style="bold")
        _show_job(b, job, False)
        events(ctx, job.id, False)
    if entry is None:
        b.err.print(f"job {ident} has no message in the DLQ", markup=False)
        raise typer.Exit(EXIT_FAILED)


@dlq_app.command("redrive")
def dlq_redrive(
    ctx: typer.Context,
    ids: IdsOpt = None,
    task: TaskOpt = None,
    error_match: ErrorOpt = None,
    older_than: OlderOpt = None,
    newer_than: NewerOpt = None,
    everything: AllOpt = False,
    max_messages: MaxOpt = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.01, help="At most this many sends a second.")
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    reset_attempts: Annotated[
        bool,
        typer.Option(
            "--reset-attempts/--keep-attempts",
            help="Give redriven jobs a fresh attempt budget, or keep the count (one more try).",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Put selected failed jobs back on the queue.

    Per message: the job is reset (failed -> pending, recorded in its history), a new
    message is sent, and only then is the DLQ message deleted. Orphans are reported and
    left in place; messages whose job already finished are deleted as stale.
    """
    selector = make_selector(
        ids or [], task, error_match, older_than, newer_than, everything, required=True
    )
    b = _backend(ctx)

    def run(restrict: frozenset[str] | None, dry: bool, hook: Callable[[Outcome], None]) -> Report:
        return b.dead.redrive(
            selector,
            actor=b.actor,
            reset_attempts=reset_attempts,
            max_messages=max_messages,
            rate=rate,
            dry_run=dry,
            restrict_to=restrict,
            on_outcome=hook,
        )

    _operate(b, "redrive", run, dry_run=dry_run, yes=yes, as_json=as_json)


@dlq_app.command("purge")
def dlq_purge(
    ctx: typer.Context,
    ids: IdsOpt = None,
    task: TaskOpt = None,
    error_match: ErrorOpt = None,
    older_than: OlderOpt = None,
    newer_than: NewerOpt = None,
    everything: AllOpt = False,
    max_messages: MaxOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete selected DLQ messages for good (orphans included); their jobs are not changed.

    Each deletion is logged as an audit record (JSON on stderr): who, what, when.
    """
    selector = make_selector(
        ids or [], task, error_match, older_than, newer_than, everything, required=True
    )
    b = _backend(ctx)

    def run(restrict: frozenset[str] | None, dry: bool, hook: Callable[[Outcome], None]) -> Report:
        return b.dead.purge(
            selector,
            actor=b.actor,
            audit=lambda record: _audit(b, record),
            max_messages=max_messages,
            dry_run=dry,
            restrict_to=restrict,
            on_outcome=hook,
        )

    _operate(b, "purge", run, dry_run=dry_run, yes=yes, as_json=as_json)


Run = Callable[[frozenset[str] | None, bool, Callable[[Outcome], None]], Report]
_DOING = {Action.REDRIVEN, Action.REQUEUED, Action.CLEARED, Action.PURGED}


def _operate(b: Backend, name: str, run: Run, *, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Dry run, or preview -> confirm -> act on what was confirmed, with a progress bar.

    The preview releases every message before the prompt (nothing stays hidden while
    a person reads), and the real pass is limited to the messages the person confirmed.
    """
    restrict: frozenset[str] | None = None
    if dry_run or not yes:
        preview = run(None, True, lambda outcome: None)
        todo = [o for o in preview.outcomes if o.action in _DOING]
        if dry_run or not todo:
            _summary(b, preview, as_json)
            return
        _summary(b, preview, False, to_stderr=True)
        question = (
            f"Redrive {len(todo)} message(s) as shown?"
            if name == "redrive"
            else f"Delete {len(todo)} DLQ message(s) for good?"
        )
        if not typer.confirm(question, default=False, err=True):
            raise typer.Abort()
        restrict = frozenset(o.entry.message_id for o in preview.outcomes)
    with _progress(b, name, None if restrict is None else len(restrict)) as advance:
        report = run(restrict, False, advance)
    _summary(b, report, as_json)
    if not report.complete:
        raise typer.Exit(EXIT_FAILED)


def _audit(b: Backend, record: AuditRecord) -> None:
    """Log the purge, and note it in the job's own history when the job exists."""
    from dataclasses import asdict

    from taskq.log import logger

    logger.info("dlq message purged", extra={"audit": asdict(record)})
    if record.job_id and is_job_id(record.job_id):
        with suppress(JobNotFound):
            b.store.record_event(
                record.job_id, "dlq-purged", f"{record.actor}; dlq message {record.message_id}"
            )


# --- output -------------------------------------------------------------------------


def _summary(b: Backend, report: Report, as_json: bool, *, to_stderr: bool = False) -> None:
    if as_json:
        _json(report.to_dict())
        return
    console = b.err if to_stderr else b.out
    would = report.dry_run
    verbs = {
        Action.REDRIVEN: "would redrive" if would else "redriven",
        Action.REQUEUED: "would re-send (job already live)" if would else "re-sent (job was live)",
        Action.CLEARED: "would delete as stale" if would else "deleted as stale",
        Action.PURGED: "would purge" if would else "purged",
        Action.ORPHAN: "orphans left in place",
        Action.SKIPPED: "skipped",
        Action.ERROR: "errors",
    }
    if report.outcomes:
        table = Table(box=None, pad_edge=False)
        for column in ("job id", "task", "outcome", "why", "message id"):
            table.add_column(column, no_wrap=column.endswith("id"), overflow="fold")
        for outcome in report.outcomes[:SHOW_ROWS]:
            entry = outcome.entry
            table.add_row(
                entry.job_id or "-",
                entry.task or "-",
                verbs[outcome.action],
                outcome.detail,
                entry.message_id,
            )
        console.print(table)
        if len(report.outcomes) > SHOW_ROWS:
            console.print(f"… {len(report.outcomes) - SHOW_ROWS} more (--json shows all)")
    counts = report.counts()
    parts = [f"{counts[a]} {verbs[a]}" for a in Action if counts[a]] or ["nothing selected"]
    head = f"{report.operation}{' (dry run, nothing changed)' if would else ''}"
    tail = f"; {report.scanned} message(s) looked at" + (
        ", more not looked at (--max reached)" if report.truncated else ""
    )
    console.print(f"{head}: {', '.join(parts)}{tail}", markup=False)


def _show_job(b: Backend, job: Job, as_json: bool, note: str = "") -> None:
    if as_json:
        _json(_job_json(job))
        return
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    out = JobOut.of(job)
    rows = {
        "id": f"{job.id} {note}".strip(),
        "task": job.task,
        "status": job.status,
        "attempts": f"{job.attempt}/{job.max_attempts}",
        "created": _when(job.created_at.timestamp()),
        "updated": _when(job.updated_at.timestamp()),
        "payload": json.dumps(job.payload),
        "result": None if job.result is None else json.dumps(job.result),
        "error": job.error,
        "retry at": None if out.run_after is None else _when(out.run_after.timestamp()),
        "expires": None if out.expires_at is None else out.expires_at.isoformat(),
    }
    for name, value in rows.items():
        if value is not None:
            table.add_row(name, str(value))
    b.out.print(table)


def _job_json(job: Job) -> dict[str, Any]:
    return JobOut.of(job).model_dump(mode="json")


def _raw_message(entry: DeadEntry) -> dict[str, Any]:
    try:
        body: Any = json.loads(entry.body)
    except ValueError:
        body = entry.body
    return {"message_id": entry.message_id, "body": body, "attributes": entry.attributes}


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def _spinner(b: Backend, text: str) -> Iterator[Callable[[str], None]]:
    if not b.err.is_terminal:
        yield lambda _: None
        return
    with b.err.status(text) as status:
        yield lambda message: status.update(message)


@contextmanager
def _progress(b: Backend, name: str, total: int | None) -> Iterator[Callable[[Outcome], None]]:
    if not b.err.is_terminal:
        yield lambda _: None
        return
    columns = (
        TextColumn(f"{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=b.err, transient=True) as bar:
        task = bar.add_task("", total=total)

        def advance(outcome: Outcome) -> None:
            bar.update(task, advance=1, description=f"{outcome.action} {outcome.entry.job_id}")

        yield advance


def _when(epoch: float) -> str:
    stamp = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp} ({_span(time.time() - epoch)} ago)"


def _span(seconds: float) -> str:
    """A short age for people: 45s, 12m, 3h05m, 2d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3_600:
        return f"{s // 60}m"
    if s < 86_400:
        return f"{s // 3_600}h{s % 3_600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3_600:02d}h"


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _delay(delay_s: int | None) -> str | None:
    return None if delay_s is None else f"(next try in {delay_s}s)"


def _clip(text: str | None, width: int = 80) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _job_id(value: str) -> str:
    if not is_job_id(value):
        raise UsageProblem(f"{value!r} is not a job id (32 lowercase hex characters)")
    return value


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


# --- entry point --------------------------------------------------------------------


def run(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (expected errors are one line)."""
    command = typer.main.get_command(app)
    try:
        with _logs_to_stderr():
            result = command.main(args=argv, prog_name="taskq", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors, as typer vendors them
        code = getattr(exc, "exit_code", EXIT_USAGE)
        message = exc.format_message()
        if not message.strip():  # a group called bare: its help was just printed
            return code
        return _fail(code, message, getattr(exc, "ctx", None))
    except typer.Abort:
        return _fail(EXIT_FAILED, "aborted; nothing was changed")
    except UsageProblem as exc:
        return _fail(EXIT_USAGE, str(exc))
    except (ConfigError, InvalidRequest) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except (JobNotFound, Conflict) as exc:
        return _fail(EXIT_FAILED, str(exc))
    except BackendError as exc:
        if isinstance(exc.__cause__, NoCredentialsError | NoRegionError):
            return _fail(EXIT_USAGE, f"{exc.__cause__} (export AWS credentials and AWS_REGION)")
        return _fail(EXIT_BACKEND, f"cannot reach AWS: {exc}")
    except (NoCredentialsError, NoRegionError) as exc:
        return _fail(EXIT_USAGE, f"{exc} (export AWS credentials and AWS_REGION)")
    except (BotoCoreError, ClientError) as exc:
        return _fail(EXIT_BACKEND, f"cannot reach AWS: {exc}")
    except TaskqError as exc:
        return _fail(EXIT_FAILED, str(exc))
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted")
    if result == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this exit code
        return _fail(EXIT_INTERRUPTED, "interrupted (messages not yet taken are visible again)")
    return result if isinstance(result, int) else EXIT_OK


def _fail(code: int, message: str, ctx: Any = None) -> int:
    line = " ".join(message.split())
    path = getattr(ctx, "command_path", None)
    hint = f" (see '{path} --help')" if path and code == EXIT_USAGE else ""
    print(f"taskq: error: {line}{hint}", file=sys.stderr)
    return code


class _Stderr:
    """Whatever sys.stderr is at the time of writing (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """taskq's logger writes JSON to stdout (Lambda's convention); a CLI keeps stdout for
    its output, so log lines (audit records, warnings) go to stderr while it runs."""
    from taskq.log import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        yield
        return
    previous = handler.setStream(_Stderr())
    try:
        yield
    finally:
        if previous is not None:
            handler.setStream(previous)


def main() -> NoReturn:
    sys.exit(run())


if __name__ == "__main__":
    main()
