"""Job commands: submit (and wait), status, events, logs, cancel, stats, and `jobs ls`.

Every read and change goes through `JobService`, the same operations the HTTP API
calls, so a job submitted or cancelled here is validated and recorded as it would be
there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer
from pydantic import ValidationError

from taskq.cli import options, render
from taskq.cli.context import CommandFailed, OperatorContext
from taskq.cli.options import JobIdArg, JsonOpt
from taskq.errors import UsageError
from taskq.jobs import JobService
from taskq.models import DEFAULT_TENANT, TERMINAL, EventsOut, Job, JobRequest, Priority, Status
from taskq.stats import collect
from taskq.store import LIST_LIMIT_MAX
from taskq.store.lines import LOG_PAGE_MAX
from taskq.text import first_validation_error

WAIT_POLL_S = (0.2, 1.0)  # --wait polls from the first to the second interval, doubling
FOLLOW_POLL_S = 1.0  # logs --follow: the worker writes a job's lines once a second

# The top-level job commands (merged into the root app) and the `jobs` group.
commands = typer.Typer()
jobs_app = typer.Typer(help="List jobs.", no_args_is_help=True, rich_markup_mode="markdown")


@commands.command()
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
    delay: options.DelayOpt = None,
    run_at: options.RunAtOpt = None,
    priority: Annotated[
        Priority | None,
        typer.Option("--priority", help="The queue it waits in (the task's own by default)."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the job finishes.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds --wait waits at most.")
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job (validated against the task's payload model), optionally waiting for it."""
    key = options.idempotency_key(idempotency_key)
    body = options.parse_payload(payload)
    try:
        request = JobRequest(
            task=task,
            payload=body,
            max_attempts=max_attempts,
            delay_s=None if delay is None else int(delay),
            run_at=run_at,
            priority=priority,
        )
    except ValidationError as exc:
        where, message = first_validation_error(exc)
        raise UsageError(f"{where}: {message}") from None
    operator = OperatorContext.of(ctx)
    submitted = operator.jobs.submit(request, key, tenant)
    job = submitted.job
    if not wait:
        note = "(made by an earlier submit with this key)" if submitted.replayed else ""
        render.show_job(operator.out, job, as_json, note=note)
        return
    job = _wait(operator, job, timeout)
    render.show_job(operator.out, job, as_json)
    if job.status != Status.COMPLETED:
        raise CommandFailed


def _wait(operator: OperatorContext, job: Job, timeout: float) -> Job:
    """Poll the job until it finishes, backing off; past the timeout, show it and fail."""
    deadline = time.monotonic() + timeout
    interval = WAIT_POLL_S[0]
    with render.spinner(operator.err, f"waiting for job {job.id}") as update:
        while job.status not in TERMINAL:
            if time.monotonic() >= deadline:
                operator.err.print(
                    f"taskq: job {job.id} is still {job.status} after {timeout:g} s", markup=False
                )
                render.show_job(operator.out, job, False)
                raise CommandFailed
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, WAIT_POLL_S[1])
            job = operator.jobs.get(job.id)
            update(f"job {job.id}: {job.status}, attempt {job.attempt}/{job.max_attempts}")
    return job


@commands.command()
def status(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """Show one job."""
    _show_after(ctx, job_id, as_json, lambda jobs, checked: jobs.get(checked))


@commands.command()
def events(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """Show a job's history: every transition, attempt, error and redrive."""
    job_id = options.job_id(job_id)
    operator = OperatorContext.of(ctx)
    job = operator.jobs.get(job_id)
    if as_json:
        render.print_json(EventsOut(job_id=job.id, events=list(job.events)).model_dump(mode="json"))
        return
    operator.out.print(render.events_table(job))


@commands.command()
def logs(
    ctx: typer.Context,
    job_id: JobIdArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new lines until the job ends")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the lines a job's task wrote with ctx.log, oldest first, with their attempt
    (--json: one JSON object per line)."""
    job_id = options.job_id(job_id)
    operator = OperatorContext.of(ctx)
    after: str | None = None
    while True:
        job, lines, after = operator.jobs.log_page(job_id, after=after, limit=LOG_PAGE_MAX)
        for line in lines:
            if as_json:
                render.print_json_line(line.model_dump(mode="json"))
            else:
                operator.out.print(render.log_line(line), markup=False, highlight=False)
        if len(lines) == LOG_PAGE_MAX:
            continue  # more are stored: no wait
        if not follow or job.status in TERMINAL:
            return  # a finished job's last lines were written before its outcome
        time.sleep(FOLLOW_POLL_S)


@commands.command()
def cancel(ctx: typer.Context, job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """Cancel a pending or retrying job (a running one cannot be: exit 1)."""
    actor = OperatorContext.of(ctx).actor
    _show_after(ctx, job_id, as_json, lambda jobs, checked: jobs.cancel(checked, actor=actor))


def _show_after(
    ctx: typer.Context, job_id: str, as_json: bool, act: Callable[[JobService, str], Job]
) -> None:
    """Check the id, act on the job through JobService, show what it is now."""
    checked = options.job_id(job_id)
    operator = OperatorContext.of(ctx)
    render.show_job(operator.out, act(operator.jobs, checked), as_json)


@commands.command()
def stats(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Jobs by status, queue depth and in-flight, DLQ depth and its oldest message's age."""
    operator = OperatorContext.of(ctx)
    figures = collect(operator.dead)
    if as_json:
        render.print_json(figures.to_dict())
        return
    operator.out.print(render.stats_table(figures))


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
    priority: Annotated[
        Priority | None, typer.Option("--priority", help="Only jobs of this priority.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=LIST_LIMIT_MAX)] = 20,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue a listing (its next cursor).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first (a Query on the status or task index; never a Scan)."""
    operator = OperatorContext.of(ctx)
    if status is None and task is None and cursor:
        raise UsageError("--cursor continues a listing by --status or --task")
    jobs, next_cursor = operator.jobs.browse(
        tenant=tenant, status=status, task=task, priority=priority, limit=limit, cursor=cursor
    )
    if as_json:
        render.print_json({"items": [render.job_json(j) for j in jobs], "next_cursor": next_cursor})
        return
    operator.out.print(render.jobs_table(jobs))
    if next_cursor:
        operator.err.print(f"more: --cursor {next_cursor}", markup=False)
