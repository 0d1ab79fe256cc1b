"""How the `taskq` command shows things: tables for people, JSON for scripts.

People get rich tables on stdout and progress on stderr (only on a terminal, so a pipe
or a log never fills with spinner frames); `--json` writes one JSON document to stdout.
Times are shown as readable UTC with their age ("2026-12-02 07:15:04 (3h05m ago)").
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from taskq.auth import ApiKey
from taskq.dlq import Action, DeadEntry, Outcome, Report
from taskq.models import TERMINAL, Job, JobOut, LogLine, Priority, Status
from taskq.models import Progress as JobProgress
from taskq.scheduling.periodic import ScheduleView
from taskq.stats import Stats
from taskq.text import first_line, iso_seconds, readable_time

SHOW_ROWS = 50  # rows of a redrive/purge summary shown to people (all of them in --json)
KEY_COLUMNS = ("key_id", "tenant", "name", "created_at", "revoked_at")


def make_console(*, stderr: bool) -> Console:
    """A console for people; piped, it is wide enough that ids are never cut."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


def print_json(data: Any) -> None:
    """One JSON document on stdout, flushed: what a script reads."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


# --- small formats -----------------------------------------------------------------


def age_span(seconds: float) -> str:
    """A short age for people: 45s, 12m, 3h05m, 2d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3_600:
        return f"{s // 60}m"
    if s < 86_400:
        return f"{s // 3_600}h{s % 3_600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3_600:02d}h"


def when(epoch: float) -> str:
    """The time and how long ago it was (or how soon it comes): an operator wants both."""
    ago = time.time() - epoch
    relative = f"{age_span(ago)} ago" if ago >= 0 else f"in {age_span(-ago)}"
    return f"{readable_time(epoch)} ({relative})"


def clip(text: str | None, width: int = 80) -> str:
    """An error's first line, short enough for a table cell ('' for none)."""
    return first_line(text or "", width)


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _delay(delay_s: int | None) -> str | None:
    return None if delay_s is None else f"(next try in {delay_s}s)"


def _table(*columns: str, no_wrap: Iterable[str] = ()) -> Table:
    """The borderless table every listing uses; ids never wrap, long text folds."""
    table = Table(box=None, pad_edge=False)
    for name in columns:
        table.add_column(name, no_wrap=name in no_wrap, overflow="fold")
    return table


def _fields(rows: Mapping[str, str | None]) -> Table:
    """A two-column "field value" table; fields without a value are left out."""
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in rows.items():
        if value is not None:
            table.add_row(name, value)
    return table


# --- jobs --------------------------------------------------------------------------


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API returns it, so scripts read one shape from either."""
    return JobOut.of(job).model_dump(mode="json")


def show_job(out: Console, job: Job, as_json: bool, note: str = "") -> None:
    """One job: all its fields for people, the API's shape for scripts."""
    if as_json:
        print_json(job_json(job))
        return
    shown = JobOut.of(job)
    rows = {
        "id": f"{job.id} {note}".strip(),
        "task": job.task,
        "status": str(job.status),
        "attempts": f"{job.attempt}/{job.max_attempts}",
        "created": when(job.created_at.timestamp()),
        "updated": when(job.updated_at.timestamp()),
        "payload": json.dumps(job.payload),
        "result": None if job.result is None else json.dumps(job.result),
        "error": job.error,
        "run at": None if shown.run_at is None else when(shown.run_at.timestamp()),
        "schedule": job.schedule,
        "priority": None if job.priority == Priority.DEFAULT else str(job.priority),
        "retry at": (
            None
            if shown.run_after is None or job.status != Status.RETRYING
            else when(shown.run_after.timestamp())
        ),
        "expires": None if shown.expires_at is None else shown.expires_at.isoformat(),
        "progress": None if job.progress is None else progress_text(job.progress),
    }
    out.print(_fields(rows))


def progress_text(progress: JobProgress) -> str:
    """`42% copying (attempt 2)`, or the reported object when there is no fraction."""
    parts = [f"{progress.fraction:.0%}" if progress.fraction is not None else ""]
    if progress.detail is not None:
        parts.append(json.dumps(progress.detail))
    if progress.message:
        parts.append(progress.message)
    return " ".join(p for p in parts if p) + f" (attempt {progress.attempt})"


def log_line(line: LogLine) -> str:
    """One of a task's lines, as `taskq logs` prints it: time, attempt, text."""
    return f"{line.at.strftime('%H:%M:%S.%f')[:-3]}  #{line.attempt}  {line.message}"


def print_json_line(data: Any) -> None:
    """One compact JSON document per line (JSON Lines): what a follower streams."""
    sys.stdout.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def events_table(job: Job) -> Table:
    """A job's history, one row per event, titled with the job's task and status."""
    table = Table(title=f"job {job.id} ({job.task}, {job.status})", title_justify="left")
    for name in ("#", "event", "attempt", "at", "error / detail"):
        table.add_column(name, overflow="fold")
    for n, event in enumerate(job.events, 1):
        table.add_row(
            str(n),
            event.kind,
            str(event.attempt),
            when(event.at.timestamp()),
            " ".join(x for x in (event.error, event.detail, _delay(event.delay_s)) if x),
        )
    return table


def jobs_table(jobs: Iterable[Job]) -> Table:
    """One row per job; the error column shows only its first line (`status` has it all)."""
    table = _table("id", "task", "status", "attempts", "created", "error", no_wrap=("id",))
    for job in jobs:
        table.add_row(
            job.id,
            job.task,
            job.status,
            f"{job.attempt}/{job.max_attempts}",
            when(job.created_at.timestamp()),
            clip(job.error),
        )
    return table


def stats_table(figures: Stats) -> Table:
    """The figures `stats --json` gives, one per row; a "+" marks a figure seen only in
    part (too many live jobs to count them all, or a DLQ too large to read whole)."""
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, count in figures.jobs.items():
        at_least = "" if figures.jobs_exact or Status(name) in TERMINAL else "+"
        table.add_row(f"jobs {name}", f"{count}{at_least}")
    for name, depth in figures.queues.items():
        label = "queue" if len(figures.queues) == 1 else f"queue {name}"
        table.add_row(f"{label} visible", str(depth["visible"]))
        table.add_row(f"{label} in flight", str(depth["in_flight"]))
        table.add_row(f"{label} delayed", str(depth["delayed"]))
    table.add_row("DLQ depth", str(figures.dlq["visible"] + figures.dlq["in_flight"]))
    age = figures.oldest_dlq_age_s
    exact = "" if figures.oldest_dlq_age_exact else "+"
    table.add_row("DLQ oldest message", "-" if age is None else age_span(age) + exact)
    return table


# --- API keys ----------------------------------------------------------------------


def key_row(key: ApiKey) -> dict[str, Any]:
    """A key's record, never the key itself (taskq keeps only its hash)."""
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "name": key.name,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def keys_table(rows: Iterable[dict[str, Any]]) -> Table:
    """The rows `keys ls --json` gives, "-" for what is unset (e.g. not revoked)."""
    table = Table(box=None, pad_edge=False)
    for column in KEY_COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c] or "-") for c in KEY_COLUMNS))
    return table


# --- the dead-letter queue ---------------------------------------------------------


def dlq_table(entries: Iterable[DeadEntry]) -> Table:
    """One row per DLQ message; orphans say why they are orphans where the error goes."""
    table = _table(
        "job id", "task", "status", "attempts", "failed", "last error", "message id",
        no_wrap=("job id", "message id"),
    )  # fmt: skip
    for entry in entries:
        orphan = entry.kind == "orphan"
        job = entry.job
        table.add_row(
            entry.job_id or "-",
            entry.task or "-",
            "orphan" if orphan else str(entry.status),
            f"{job.attempt}/{job.max_attempts}" if job else _or_dash(entry.attempts),
            when(entry.failed_at),
            clip(entry.orphan_reason if orphan else entry.error),
            entry.message_id,
        )
    return table


def raw_message(entry: DeadEntry) -> dict[str, Any]:
    """The SQS message as received: its body parsed when it is JSON, and its attributes."""
    try:
        body: Any = json.loads(entry.body)
    except ValueError:
        body = entry.body
    return {"message_id": entry.message_id, "body": body, "attributes": entry.attributes}


def dlq_message_table(entry: DeadEntry) -> Table:
    """The raw message field by field (and, for an orphan, why it has no job)."""
    rows = {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in raw_message(entry).items()
    }
    if entry.kind == "orphan":
        rows["orphan"] = entry.orphan_reason or ""
    return _fields(rows)


def _verbs(dry_run: bool) -> dict[Action, str]:
    """What each outcome is called in a summary: what happened, or what would."""
    return {
        Action.REDRIVEN: "would redrive" if dry_run else "redriven",
        Action.REQUEUED: "would re-send (job already live)"
        if dry_run
        else "re-sent (job was live)",
        Action.CLEARED: "would delete as stale" if dry_run else "deleted as stale",
        Action.PURGED: "would purge" if dry_run else "purged",
        Action.ORPHAN: "orphans left in place",
        Action.SKIPPED: "skipped",
        Action.ERROR: "errors",
    }


def report_summary(console: Console, report: Report, as_json: bool) -> None:
    """A redrive's or purge's outcome per message (the first SHOW_ROWS) and the counts."""
    if as_json:
        print_json(report.to_dict())
        return
    verbs = _verbs(report.dry_run)
    if report.outcomes:
        table = _table(
            "job id", "task", "outcome", "why", "message id", no_wrap=("job id", "message id")
        )
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
    head = f"{report.operation}{' (dry run, nothing changed)' if report.dry_run else ''}"
    tail = f"; {report.scanned} message(s) looked at" + (
        ", more not looked at (--max reached)" if report.truncated else ""
    )
    console.print(f"{head}: {', '.join(parts)}{tail}", markup=False)


# --- progress (stderr, terminals only) ---------------------------------------------


@contextmanager
def spinner(err: Console, text: str) -> Iterator[Callable[[str], None]]:
    """A spinner with a status line; yields the function that updates the line."""
    if not err.is_terminal:
        yield lambda _: None
        return
    with err.status(text) as status:
        yield lambda message: status.update(message)


@contextmanager
def progress(err: Console, name: str, total: int | None) -> Iterator[Callable[[Outcome], None]]:
    """A progress bar over a redrive or purge; yields the per-outcome hook that advances it."""
    if not err.is_terminal:
        yield lambda _: None
        return
    columns = (
        TextColumn(f"{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=total)

        def advance(outcome: Outcome) -> None:
            bar.update(task, advance=1, description=f"{outcome.action} {outcome.entry.job_id}")

        yield advance


# --- schedules ---------------------------------------------------------------------


def schedule_row(view: ScheduleView) -> dict[str, Any]:
    """A periodic schedule as `schedules ls --json` prints it."""
    schedule, state = view.schedule, view.state
    return {
        "name": schedule.name,
        "task": schedule.task,
        "expression": schedule.expression.text,
        "tz": schedule.expression.tz,
        "overlap": schedule.overlap,
        "catch_up_s": schedule.catch_up_s,
        "paused": state.paused,
        "changed_by": state.changed_by,
        "next_fires": [iso_seconds(t) for t in view.next_fires],
        "last_job": state.last_job,
    }


def schedules_table(views: Iterable[ScheduleView]) -> Table:
    table = _table(
        "name", "task", "expression", "state", "next fire", "last job", no_wrap=("name",)
    )
    for view in views:
        expression = view.schedule.expression
        tz = "" if expression.tz == "UTC" else f" {expression.tz}"
        table.add_row(
            view.schedule.name,
            view.schedule.task,
            f"{expression.text}{tz}",
            "paused" if view.state.paused else "active",
            when(view.next_fires[0]) if view.next_fires else "never",
            view.state.last_job or "",
        )
    return table
