"""`taskq upgrade`: the one-off steps between two deploys of a stack (README, "Upgrading
a stack")."""

from __future__ import annotations

import typer

from taskq.cli import render
from taskq.cli.context import OperatorContext
from taskq.cli.options import JsonOpt
from taskq.store.upgrade import backfill_phases

app = typer.Typer(
    help="One-off steps of an upgrade between two deploys.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@app.command("phases")
def upgrade_phases(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Give every job the phase the phase index is keyed on (a table made before
    2026-12-03, deployed once with KeepStatusIndex=true). Safe to run again."""
    operator = OperatorContext.of(ctx)
    report = backfill_phases(operator.services.store)
    if as_json:
        render.print_json({"updated": report.updated, "left": report.left})
        return
    operator.err.print(
        f"{report.updated} jobs given their phase; {report.left} left alone "
        "(had one already, or moved on meanwhile)"
    )
