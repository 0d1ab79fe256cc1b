"""`taskq dlq`: list, show, redrive and purge the dead-letter queue's messages.

The DLQ operations themselves are `taskq.dlq.DeadLetters`; this adds the operator's
side: selecting messages from options, a preview and a confirmation before anything
changes, a progress bar while it does, and a summary after.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import partial
from typing import Annotated, Protocol

import typer

from taskq.cli import options, render
from taskq.cli.context import CommandFailed, OperatorContext
from taskq.cli.options import DryRunOpt, JsonOpt, MaxOpt, YesOpt, selects_messages
from taskq.dlq import Action, AuditRecord, Outcome, Report, Selector, record_purge
from taskq.errors import JobNotFound
from taskq.models import is_job_id

app = typer.Typer(
    help="The dead-letter queue: list, show, redrive and purge failed jobs' messages.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


class DlqPass(Protocol):
    """A redrive or purge with its selection and options bound: what is left to say is
    whether it is a dry run, which messages it may take, and who hears of each outcome."""

    def __call__(
        self,
        *,
        dry_run: bool,
        restrict_to: Collection[str] | None,
        on_outcome: Callable[[Outcome], None] | None,
    ) -> Report: ...


_CHANGING = {Action.REDRIVEN, Action.REQUEUED, Action.CLEARED, Action.PURGED}


@app.command("ls")
@selects_messages(changes=False)
def dlq_ls(
    ctx: typer.Context,
    selector: Selector,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """One row per DLQ message: job, task, attempts, last error, when it failed.

    Messages whose job is missing or whose body is not a job message are listed too,
    marked as orphans. Listing receives the messages and makes them visible again.
    """
    operator = OperatorContext.of(ctx)
    scan = operator.dead.list_messages(selector, limit=limit)
    if as_json:
        render.print_json(
            {
                "messages": [e.to_dict() for e in scan.entries],
                "scanned": scan.seen,
                "truncated": scan.truncated,
            }
        )
        return
    if not scan.entries:
        operator.err.print(f"no matching DLQ messages ({scan.seen} looked at)", markup=False)
        return
    operator.out.print(render.dlq_table(scan.entries))
    more = " (more not shown: raise --limit)" if scan.truncated else ""
    operator.err.print(f"{len(scan.entries)} message(s){more}", markup=False)


@app.command("show")
def dlq_show(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="ID", help="A job id or a DLQ message id.")],
    as_json: JsonOpt = False,
) -> None:
    """A DLQ message in full: its job, the job's events and the raw message."""
    ident = options.job_or_message_id(ident)
    operator = OperatorContext.of(ctx)
    entry = operator.dead.show(ident)
    job = entry.job if entry else (operator.jobs.find(ident) if is_job_id(ident) else None)
    if entry is None and job is None:
        raise JobNotFound(f"no DLQ message or job with id {ident}")
    if as_json:
        render.print_json(
            {
                "message": None if entry is None else render.raw_message(entry),
                "entry": None if entry is None else entry.to_dict(),
                "job": None if job is None else render.job_json(job),
                "events": [] if job is None else [e.model_dump(mode="json") for e in job.events],
            }
        )
    else:
        if entry is not None:
            operator.out.print("DLQ message", style="bold")
            operator.out.print(render.dlq_message_table(entry))
        if job is not None:
            operator.out.print("job", style="bold")
            render.show_job(operator.out, job, False)
            operator.out.print(render.events_table(job))
        if entry is None:
            operator.err.print(f"job {ident} has no message in the DLQ", markup=False)
    if entry is None:
        raise CommandFailed


@app.command("redrive")
@selects_messages(changes=True)
def dlq_redrive(
    ctx: typer.Context,
    selector: Selector,
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
    operator = OperatorContext.of(ctx)

    redrive_selected = partial(
        operator.dead.redrive,
        selector,
        actor=operator.actor,
        reset_attempts=reset_attempts,
        max_messages=max_messages,
        rate=rate,
    )
    _preview_confirm_apply(
        operator, "redrive", redrive_selected, dry_run=dry_run, yes=yes, as_json=as_json
    )


@app.command("purge")
@selects_messages(changes=True)
def dlq_purge(
    ctx: typer.Context,
    selector: Selector,
    max_messages: MaxOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete selected DLQ messages for good (orphans included); their jobs are not changed.

    Each deletion is logged as an audit record (JSON on stderr): who, what, when.
    """
    operator = OperatorContext.of(ctx)

    purge_selected = partial(
        operator.dead.purge,
        selector,
        actor=operator.actor,
        audit=lambda record: _audit(operator, record),
        max_messages=max_messages,
    )
    _preview_confirm_apply(
        operator, "purge", purge_selected, dry_run=dry_run, yes=yes, as_json=as_json
    )


def _preview_confirm_apply(
    operator: OperatorContext,
    name: str,
    dlq_pass: DlqPass,
    *,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Dry run, or preview -> confirm -> act on what was confirmed, with a progress bar.

    The preview releases every message before the prompt (nothing stays hidden while
    a person reads), and the real pass is limited to the messages the person confirmed.
    """
    restrict: frozenset[str] | None = None
    if dry_run or not yes:
        preview = dlq_pass(dry_run=True, restrict_to=None, on_outcome=None)
        todo = [o for o in preview.outcomes if o.action in _CHANGING]
        if dry_run or not todo:
            render.report_summary(operator.out, preview, as_json)
            return
        render.report_summary(operator.err, preview, False)
        question = (
            f"Redrive {len(todo)} message(s) as shown?"
            if name == "redrive"
            else f"Delete {len(todo)} DLQ message(s) for good?"
        )
        if not typer.confirm(question, default=False, err=True):
            raise typer.Abort()
        restrict = frozenset(o.entry.message_id for o in preview.outcomes)
    with render.progress(operator.err, name, None if restrict is None else len(restrict)) as hook:
        report = dlq_pass(dry_run=False, restrict_to=restrict, on_outcome=hook)
    render.report_summary(operator.out, report, as_json)
    if not report.complete:
        raise CommandFailed


def _audit(operator: OperatorContext, record: AuditRecord) -> None:
    """The purge's audit trail, the dashboard's too: see taskq.dlq.record_purge."""
    record_purge(operator.services.store, record)
