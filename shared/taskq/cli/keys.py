"""`taskq keys`: create, list and revoke the API keys that guard the HTTP API.

A key is shown once, when created; taskq keeps only its hash, so `ls` shows records
and ids, never keys.
"""

from __future__ import annotations

from typing import Annotated

import typer

from taskq.cli import options, render
from taskq.cli.context import OperatorContext
from taskq.cli.options import JsonOpt
from taskq.errors import JobNotFound

app = typer.Typer(
    help="API keys: create (shown once), list, revoke. Keys are stored only as hashes.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant the key's jobs belong to.")],
    name: Annotated[str, typer.Option(help="What the key is for (e.g. ci, billing-service).")],
    as_json: JsonOpt = False,
) -> None:
    """Create an API key. It is printed once, now: store it; taskq keeps only its hash."""
    operator = OperatorContext.of(ctx)
    record, key = operator.keys.create(tenant, name)
    if as_json:
        render.print_json({**render.key_row(record), "key": key})
        return
    operator.out.print(key)
    operator.err.print(f"key {record.key_id} for tenant {record.tenant}: shown once, store it now")


@app.command("ls")
def keys_ls(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List API keys (never the keys themselves)."""
    operator = OperatorContext.of(ctx)
    rows = [render.key_row(k) for k in operator.keys.list(tenant)]
    if as_json:
        render.print_json(rows)
        return
    operator.out.print(render.keys_table(rows))


@app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key id (16 hex).")],
) -> None:
    """Revoke a key; API processes stop accepting it within 30 s (their cache)."""
    key_id = options.key_id(key_id)
    operator = OperatorContext.of(ctx)
    if not operator.keys.revoke(key_id):
        raise JobNotFound(f"no active key {key_id} (unknown, or revoked already)")
    operator.err.print(f"key {key_id} revoked")
