"""`taskq dashboard`: the operator web app for this stack, from this operator's AWS
credentials (like every other command), on loopback unless told otherwise with a token."""

from __future__ import annotations

import sys
from contextlib import suppress
from typing import Annotated

import typer

from taskq.cli.context import OperatorContext, default_actor
from taskq.config import Env
from taskq.errors import UsageError

commands = typer.Typer()
DEFAULT_PORT = 8089
TOKEN_MIN_CHARS = 16


@commands.command()
def dashboard(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (not loopback: needs --token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = DEFAULT_PORT,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=Env.DASHBOARD_TOKEN,
            show_envvar=True,
            help="Require this token (at least 16 characters); required off loopback.",
        ),
    ] = None,
) -> None:
    """Serve the operator dashboard: overview, jobs, DLQ and schedules in a browser.

    It binds 127.0.0.1 by default. Binding any other address needs a token, which every
    browser presents once (the printed URL carries it) and scripts send as a Bearer
    header; put TLS in front of it (a reverse proxy) when it leaves this machine.
    """
    # Imported here: the web stack (FastAPI, Jinja2, uvicorn) is only this command's.
    from taskq.dashboard import create_app
    from taskq.dashboard.security import is_loopback
    from taskq.dashboard.server import bind, serve

    operator = OperatorContext.of(ctx)
    if token is not None and len(token) < TOKEN_MIN_CHARS:
        raise UsageError(f"--token must be at least {TOKEN_MIN_CHARS} characters")
    if not is_loopback(host) and token is None:
        raise UsageError(
            f"--host {host} is reachable from other machines: give a token "
            f"(--token or {Env.DASHBOARD_TOKEN}), or keep the default 127.0.0.1"
        )
    services = operator.services  # a missing table name fails here, with its one line
    actor = operator.actor if operator.actor_given else default_actor("taskq dashboard")
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    app = create_app(
        services, actor=actor, port=port, token=token, stack_label=operator.stack or ""
    )
    if token is None:
        print(f"taskq dashboard on {url} (loopback only; Ctrl-C stops it)", file=sys.stderr)
    else:
        print(
            f"taskq dashboard on {url} (token required: open {url}?token=<your token> once; "
            "Ctrl-C stops it)",
            file=sys.stderr,
        )
    sys.stderr.flush()
    with suppress(KeyboardInterrupt):  # uvicorn stops on Ctrl-C, then passes the signal on
        serve(app, sock)
    print("taskq dashboard: stopped", file=sys.stderr)
