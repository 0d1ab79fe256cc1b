"""`make dev`: the whole service on this machine, on the embedded moto server or AWS_ENDPOINT_URL.

Starts the emulator (unless an endpoint is given), provisions the stack from template.yaml,
inits every function once (an init error, such as a task module that cannot be imported,
stops the start with one line) and serves the API, the worker's poller, the schedules and
the operator dashboard (http://127.0.0.1:8089, TASKQ_DASHBOARD_PORT) until Ctrl-C or SIGTERM.

TASKQ_TASK_MODULES adds your task modules (in tasks/) to the template's TaskModules default
(the demo tasks): `TASKQ_TASK_MODULES=tasks.billing make dev`; `-taskq.demo_tasks` in the
list leaves the demo tasks out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from infra.clients import credentials_env
from infra.emulator import EmulatorError, MotoServer, endpoint_reachable, port_in_use
from infra.gateway import HOST
from infra.local_cloud import FunctionInitError, LocalCloud
from infra.template import QUEUE, TemplateError, load_template
from taskq.cli.context import default_actor, settings_from
from taskq.dashboard import create_app
from taskq.dashboard.server import DashboardThread, bind
from taskq.errors import TaskqError
from taskq.wiring import build

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
DEMO_TASKS = "taskq.demo_tasks"
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
EMULATOR_PORT = 4566  # the port LocalStack and most tools expect
DASHBOARD_PORT = 8089  # taskq dashboard's default port too
# `make dev` serves loopback only, so it runs without API keys unless TASKQ_AUTH=required.
AUTH_OFF_WARNING = (
    "  WARNING   authentication is OFF (loopback only): any local process can use the API.\n"
    "            TASKQ_AUTH=required make dev turns API keys on (taskq keys create ...)."
)


class DevError(Exception):
    """A start-up problem the user can fix; reported as one line."""


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    # botocore says at INFO where it found credentials, once per client: noise here, and
    # it would bury a start-up error's one line when AWS_ACCESS_KEY_ID is exported.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with contextlib.ExitStack() as resources:
            cloud, source = _start(resources)
            _write_cli_env(cloud)
            print(_banner(cloud, source), flush=True)
            # Poll: a signal caught by another thread only runs its handler once the main
            # thread wakes, and a bare wait() might never wake.
            while not stopping.wait(0.5):
                pass
            print("taskq dev: stopping", file=sys.stderr, flush=True)
    except (DevError, EmulatorError, TemplateError) as exc:
        print(f"taskq dev: {exc}", file=sys.stderr)
        return 1
    except FunctionInitError as exc:
        # A ConfigError's line says it all (it names the module and the fix); anything else
        # is a bug in the function's code, whose traceback is worth showing.
        trace = getattr(exc.error, "trace", "")
        kind = getattr(exc.error, "error_type", "")
        print(f"taskq dev: {exc}", file=sys.stderr)
        if trace and kind != "ConfigError":
            print(trace, file=sys.stderr, end="")
        return 1
    return 0


def _start(resources: contextlib.ExitStack) -> tuple[LocalCloud, str]:
    stage = os.environ.get("TASKQ_STAGE", "dev")
    api_port = _port(os.environ.get("TASKQ_API_PORT", "3000"))
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        if not endpoint_reachable(endpoint):
            raise DevError(f"AWS_ENDPOINT_URL={endpoint} does not answer; start it or unset it")
        source = "from AWS_ENDPOINT_URL"
    else:
        if port_in_use(HOST, EMULATOR_PORT):
            raise DevError(
                f"port {EMULATOR_PORT} is in use; if an emulator runs there, use it with "
                f"AWS_ENDPOINT_URL=http://{HOST}:{EMULATOR_PORT} make dev"
            )
        moto = resources.enter_context(MotoServer(EMULATOR_PORT, log_path=ROOT / ".dev/moto.log"))
        endpoint, source = moto.url, f"embedded moto server, pid {moto.pid}, log .dev/moto.log"
    if port_in_use(HOST, api_port):
        raise DevError(f"API port {api_port} is in use; choose another with TASKQ_API_PORT")
    parameters = {"AuthMode": _auth_mode()}
    modules = task_modules(os.environ.get("TASKQ_TASK_MODULES"), template_task_modules())
    if modules is not None:
        parameters["TaskModules"] = modules
    dashboard_port = _dashboard_port()
    if port_in_use(HOST, dashboard_port):
        raise DevError(
            f"dashboard port {dashboard_port} is in use; choose another with TASKQ_DASHBOARD_PORT"
        )
    cloud = LocalCloud(
        TEMPLATE, endpoint_url=endpoint, stage=stage, api_port=api_port, region=region,
        parameters=parameters, init_functions=True,
    )  # fmt: skip
    resources.enter_context(cloud)
    resources.enter_context(_dashboard(cloud, dashboard_port))
    return cloud, source


def _dashboard(cloud: LocalCloud, port: int) -> DashboardThread:
    """`taskq dashboard` for this stack, in this process, on loopback (no token needed).

    It reads the stack as the CLI does, from the names in cloud.env, with the credentials
    the functions get (the user's, or the emulator's dummy ones).
    """
    os.environ.update(credentials_env())
    try:
        services = build(settings_from(cloud.env))
    except TaskqError as exc:
        raise DevError(f"dashboard: {exc}") from None
    sock = bind(HOST, port)
    actor = os.environ.get("TASKQ_ACTOR") or default_actor("taskq dashboard")
    app = create_app(services, actor=actor, port=port, stack_label=cloud.stage)
    return DashboardThread(app, sock)


CLI_ENV = ROOT / ".dev" / "env"
_CLI_NAMES = (
    "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "TASKQ_TABLE", "TASKQ_QUEUE_URL", "TASKQ_HIGH_QUEUE_URL",
    "TASKQ_LOW_QUEUE_URL", "TASKQ_DLQ_URL", "TASKQ_KEYS_TABLE", "TASKQ_LOGS_TABLE",
    "TASKQ_TASK_MODULES", "PYTHONPATH",
)  # fmt: skip


def _write_cli_env(cloud: LocalCloud) -> None:
    """What the `taskq` CLI needs to find this stack, for `source .dev/env`.

    `taskq submit` validates payloads as the API does, so the CLI gets the same task modules
    and, through PYTHONPATH, the functions' layer folders they are imported from (tasks/).
    """
    layers = dict.fromkeys(str(p) for f in cloud.functions.values() for p in f.spec.layers)
    env = {**cloud.env, "PYTHONPATH": os.pathsep.join(layers)}
    CLI_ENV.parent.mkdir(exist_ok=True)
    CLI_ENV.write_text(
        "".join(f"export {name}={shlex.quote(env[name])}\n" for name in _CLI_NAMES if env.get(name))
    )


def task_modules(value: str | None, default: str) -> str | None:
    """The TaskModules parameter for TASKQ_TASK_MODULES=value, or None to keep the template's.

    Your modules are added to the template's default (the demo tasks) rather than replacing
    it, so the README's tour keeps working next to your tasks; an entry `-module` takes a
    module out (`-taskq.demo_tasks`, e.g. when a task of yours is named like a demo task).
    """
    entries = [e.strip() for e in (value or "").split(",") if e.strip()]
    if not entries:
        return None
    for entry in entries:
        if not _MODULE_NAME.fullmatch(entry.removeprefix("-")):
            raise DevError(
                f"TASKQ_TASK_MODULES: {entry!r} is not a module name "
                "(e.g. tasks.billing, or -taskq.demo_tasks to leave the demo tasks out)"
            )
    dropped = {e.removeprefix("-") for e in entries if e.startswith("-")}
    wanted = [m for m in (*default.split(","), *entries) if m and not m.startswith("-")]
    modules = [m for m in dict.fromkeys(wanted) if m not in dropped]
    if not modules:
        raise DevError("TASKQ_TASK_MODULES leaves no task module; name one, e.g. tasks.example")
    return ",".join(modules)


def template_task_modules() -> str:
    """The TaskModules default in template.yaml (the single source of truth)."""
    declared = (load_template(TEMPLATE).get("Parameters") or {}).get("TaskModules") or {}
    return str(declared.get("Default", ""))


def _auth_mode() -> str:
    mode = os.environ.get("TASKQ_AUTH", "off")
    if mode not in ("off", "required"):
        raise DevError(f"TASKQ_AUTH={mode!r}: use 'required' or 'off'")
    return mode


def _banner(cloud: LocalCloud, source: str) -> str:
    assert cloud.stack is not None
    stack = cloud.stack
    queues = stack.logical_ids(QUEUE)
    modules = cloud.env.get("TASKQ_TASK_MODULES", "")
    dlqs = {stack.dead_letter_queue(q) for q in queues} - {None}
    lines = [
        f"taskq dev (stage {cloud.stage}) is running",
        f"  API       {cloud.api_url}",
        f"  docs      {cloud.api_url}/docs",
        f"  dashboard http://{HOST}:{_dashboard_port()}/ (operators: jobs, DLQ, schedules)",
        f"  endpoint  {cloud.endpoint_url} ({source})",
        *(f"  table     {name}" for name in cloud.resources.tables.values()),
        *(f"  queue     {stack.queue_name(q)}" for q in queues if q not in dlqs),
        *(f"  DLQ       {stack.queue_name(q)}" for q in queues if q in dlqs),
        *([AUTH_OFF_WARNING] if _auth_mode() == "off" else ["  auth      API keys required"]),
        f"  tasks     from {modules.replace(',', ', ')} (curl {cloud.api_url}/tasks lists them)",
        "  try:",
        f"    curl -X POST {cloud.api_url}/jobs -H 'content-type: application/json' "
        """-d '{"task":"echo","payload":{"message":"hi"}}'"""
        if DEMO_TASKS in modules.split(",")
        else f"    curl {cloud.api_url}/tasks",
        f"  CLI       source {CLI_ENV.relative_to(ROOT)} && .venv/bin/taskq stats",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def _dashboard_port() -> int:
    return _port(
        os.environ.get("TASKQ_DASHBOARD_PORT", str(DASHBOARD_PORT)), "TASKQ_DASHBOARD_PORT"
    )


def _port(text: str, name: str = "TASKQ_API_PORT") -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DevError(f"{name}={text!r} is not a port number")
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
