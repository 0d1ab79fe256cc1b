"""`taskq schedules`: the periodic schedules the task modules declare, and their state.

The schedules themselves live in code (`@task(schedule=...)`); what operators change
here, a pause, lives in the jobs table, so it survives restarts and deploys. Every
command is one call of taskq.scheduling.periodic.ScheduleService, as the dashboard's are.
"""

from __future__ import annotations

from typing import Annotated

import typer

from taskq.cli import render
from taskq.cli.context import OperatorContext
from taskq.cli.options import JsonOpt

app = typer.Typer(
    help="Periodic schedules: list (next fire times), pause, resume, trigger (run once now).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name (see `ls`).")]


@app.command("ls")
def schedules_ls(
    ctx: typer.Context,
    upcoming: Annotated[
        int, typer.Option("--next", min=1, max=20, help="Next fire times to compute.")
    ] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Every schedule: its expression, paused or active, next fire and latest job."""
    operator = OperatorContext.of(ctx)
    views = operator.services.schedules.views(upcoming)
    if as_json:
        render.print_json([render.schedule_row(v) for v in views])
        return
    if not views:
        operator.err.print('no schedules: declare one with @task(schedule="rate(1 hour)")')
        return
    operator.out.print(render.schedules_table(views))


@app.command("pause")
def schedules_pause(ctx: typer.Context, name: NameArg) -> None:
    """Stop firing it (until `resume`); jobs already created for coming fires are cancelled."""
    operator = OperatorContext.of(ctx)
    cancelled = operator.services.schedules.pause(name, operator.actor)
    more = f"; cancelled {len(cancelled)} coming fire(s)" if cancelled else ""
    operator.err.print(f"schedule {name} paused{more}", markup=False)


@app.command("resume")
def schedules_resume(ctx: typer.Context, name: NameArg) -> None:
    """Fire it again from now on; fires missed while paused are not run."""
    operator = OperatorContext.of(ctx)
    operator.services.schedules.resume(name, operator.actor)
    operator.err.print(f"schedule {name} resumed", markup=False)


@app.command("trigger")
def schedules_trigger(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Run its task now, once, with its payload (paused or not)."""
    operator = OperatorContext.of(ctx)
    job = operator.services.schedules.trigger(name, operator.actor)
    render.show_job(operator.out, job, as_json)
