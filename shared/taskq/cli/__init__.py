"""The `taskq` command: the operator's view of jobs, API keys and the dead-letter queue.

It finds the table and queues the way the functions do (TASKQ_TABLE, TASKQ_QUEUE_URL,
TASKQ_DLQ_URL, AWS_ENDPOINT_URL, AWS_REGION), or from a CloudFormation stack's outputs
(--stack). Every change of job status goes through the job service (taskq.jobs) or the
DLQ operations (taskq.dlq); nothing here writes a status itself.

People get tables and progress bars (on stderr, only on a terminal); scripts pass
--json and read stdout. Expected failures are one line on stderr and an exit code
from the small scheme in EXIT_CODES, never a traceback.

This package: the app and its entry point (here), what an invocation works with
(`context`), shared options and parsers (`options`), output (`render`), and one module
per command group (`jobs`, `dlq`, `keys`, `schedules`, `dashboard`, `upgrade`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from taskq.cli import dashboard, dlq, jobs, keys, schedules, upgrade
from taskq.cli.context import CommandFailed, OperatorContext, default_actor
from taskq.config import Env
from taskq.errors import (
    BackendError,
    ConfigError,
    Conflict,
    InvalidRequest,
    JobNotFound,
    TaskqError,
    UsageError,
)
from taskq.log import logger

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
# The order here is the order `taskq --help` lists them in.
app.add_typer(jobs.commands)  # submit, status, events, cancel, stats: top-level commands
app.add_typer(jobs.jobs_app, name="jobs", epilog=EXIT_CODES)
app.add_typer(dlq.app, name="dlq", epilog=EXIT_CODES)
app.add_typer(keys.app, name="keys", epilog=EXIT_CODES)
app.add_typer(schedules.app, name="schedules", epilog=EXIT_CODES)
app.add_typer(dashboard.commands)  # `taskq dashboard`: a top-level command
app.add_typer(upgrade.app, name="upgrade", epilog=EXIT_CODES)


@app.callback()
def root(
    ctx: typer.Context,
    stack: Annotated[
        str | None,
        typer.Option(
            "--stack",
            envvar=Env.STACK,
            help="Find the table and queues from this CloudFormation stack's outputs.",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            envvar=Env.ACTOR,
            help="Who to record in job histories and audit records (default: user@host).",
        ),
    ] = None,
) -> None:
    """Operate taskq from a terminal.

    Configuration comes from the environment the functions use: TASKQ_TABLE,
    TASKQ_QUEUE_URL, TASKQ_DLQ_URL, AWS_ENDPOINT_URL (moto, LocalStack) and AWS_REGION.
    """
    ctx.obj = OperatorContext(
        env=dict(os.environ),
        stack=stack,
        actor=actor or default_actor(),
        actor_given=actor is not None,
    )


# --- entry point --------------------------------------------------------------------


def main_with_exit_code(argv: list[str] | None = None) -> int:
    """Run one command line in this process and return its exit code.

    Expected failures become one line on stderr (see `failure`); `main` exits with the
    code, tests call this directly.
    """
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
    except CommandFailed:  # the command has printed why
        return EXIT_FAILED
    except (TaskqError, BotoCoreError, ClientError) as exc:
        return _fail(*failure(exc))
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted")
    if result == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this exit code
        return _fail(EXIT_INTERRUPTED, "interrupted (messages not yet taken are visible again)")
    return result if isinstance(result, int) else EXIT_OK


def failure(exc: Exception) -> tuple[int, str]:
    """The exit code and message for an expected error: 2 for what the operator can fix
    in the command line or environment, 1 for what the jobs' state refused, 3 for AWS."""
    if isinstance(exc, UsageError | ConfigError | InvalidRequest):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, JobNotFound | Conflict):
        return EXIT_FAILED, str(exc)
    # botocore's own errors, or the cause of the BackendError taskq wrapped them in.
    cause = exc.__cause__ if isinstance(exc, BackendError) else exc
    if isinstance(cause, NoCredentialsError | NoRegionError):
        return EXIT_USAGE, f"{cause} (export AWS credentials and AWS_REGION)"
    if isinstance(exc, BackendError | BotoCoreError | ClientError):
        return EXIT_BACKEND, f"cannot reach AWS: {exc}"
    return EXIT_FAILED, str(exc)


def _fail(code: int, message: str, ctx: Any = None) -> int:
    """Print the one error line (with a pointer to --help for usage errors)."""
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
    """The console script (`taskq`, see pyproject.toml) and `python -m taskq.cli`."""
    sys.exit(main_with_exit_code())


__all__ = [
    "EXIT_BACKEND",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "app",
    "failure",
    "main",
    "main_with_exit_code",
]
