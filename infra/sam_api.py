"""`make sam-api`: every function in Lambda containers through `sam local`, on the embedded
emulator: the API behind `sam local start-api`, the worker, sweeper and clock behind
`sam local start-lambda`, invoked by the local SQS poller and schedules as Lambda's event
source mappings and EventBridge rules would.

What starts, in order (stopped in reverse, also on failure or Ctrl-C):

1. the Lambda base image: AWS's if it is present, else the stand-in (infra/lambda_image.py);
2. a Docker bridge network of this run's own (infra/docker_engine.py);
3. moto's server on 127.0.0.1, and a relay on the network's gateway address to it, so the
   containers reach the emulator and nothing beyond this machine does;
4. env.json for the containers, generated (endpoint: the gateway; the emulator's account);
5. `sam local start-lambda` on a free loopback port;
6. the stack provisioned from template.yaml, the worker's event-source pollers and the
   sweeper's and clock's schedules, invoking through start-lambda (LocalCloud, no gateway);
7. `sam local start-api` on 127.0.0.1:PORT. Both serve the host build (.aws-sam/host/build).

    python -m infra.sam_api [--port 3000]        # serve until Ctrl-C (make sam-api)
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

from infra.clients import client, credentials_env
from infra.dev import DevError, task_modules, template_task_modules
from infra.docker_engine import BridgeNetwork, DockerError, engine_answers
from infra.emulator import (
    EmulatorError,
    MotoServer,
    endpoint_reachable,
    free_port,
    port_in_use,
)
from infra.lambda_endpoint import LambdaEndpointFunction
from infra.lambda_image import ImageBuildError, ensure
from infra.local_cloud import LocalCloud
from infra.samlocal import env_json, host_architecture, render
from infra.sandbox import Invocable
from infra.service import Service
from infra.tcp_relay import TcpRelay
from infra.template import FUNCTION, FunctionSpec, Stack

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
HOST_BUILD = ROOT / ".aws-sam" / "host" / "build"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
HOST = "127.0.0.1"
REGION = "us-east-1"
START_TIMEOUT_S = 120.0  # sam's start plus the API container's first (cold) start
STOP_TIMEOUT_S = 20.0
DESKTOP_HOST = "host.docker.internal"  # Docker Desktop's name for the host, from containers
log = logging.getLogger(__name__)
# What the functions run with here, as `make dev` does: no API keys, on loopback only.
PARAMETERS = {"AuthMode": "off"}


class SamApiError(Exception):
    """Something to fix before `sam local` can serve; one line."""


class SamServer(Service):
    """One `sam local start-api|start-lambda` process, its output in a log file; stop()
    sends SIGINT to its pid (so SAM removes its warm containers), then SIGKILL."""

    def __init__(
        self, argv: list[str], env: dict[str, str], log_path: Path, ready_url: str
    ) -> None:
        self.argv, self.env, self.log_path, self.ready_url = argv, env, log_path, ready_url
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> SamServer:
        self._log = open(self.log_path, "w+b")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        what = " ".join(self.argv[1:3])
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise SamApiError(f"sam {what} exited: {tail}")
            if endpoint_reachable(self.ready_url, timeout=30.0):
                return self
            time.sleep(0.5)
        self.stop()
        raise SamApiError(f"sam {what} did not answer within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1] if lines else "(no output)"


class SamLocalApi(Service):
    """The whole `make sam-api` stack; a context manager. `url` is the API's address."""

    def __init__(
        self,
        *,
        port: int = 3000,
        stage: str = "dev",
        build_dir: Path = HOST_BUILD,
        sam: Path = SAM,
        work_dir: Path = ROOT / ".dev" / "sam",
    ) -> None:
        self.port = port
        self.stage = stage
        self.build_dir = build_dir
        self.sam = sam
        self.work_dir = work_dir
        self.url = f"http://{HOST}:{port}"
        self.lambda_url = ""
        self.image: str | None = None
        self.cloud: LocalCloud | None = None
        self.network: BridgeNetwork | None = None
        self.env_json = work_dir / "env.json"
        # Your task modules, as `make dev` takes them: TASKQ_TASK_MODULES=tasks.billing
        modules = task_modules(os.environ.get("TASKQ_TASK_MODULES"), template_task_modules())
        self.parameters = {
            **PARAMETERS,
            "Stage": stage,
            **({"TaskModules": modules} if modules else {}),
        }
        self._stack = contextlib.ExitStack()

    def start(self) -> SamLocalApi:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Everything started, newest first: sam's servers, the cloud, network, relay, moto."""
        self._stack.close()

    def _start(self) -> None:
        if not engine_answers():
            raise SamApiError("no Docker engine answers (start dockerd or Docker Desktop)")
        if not (self.build_dir / "template.yaml").exists():
            raise SamApiError(f"no host build in {self.build_dir} (make sam-api builds it)")
        if port_in_use(HOST, self.port):
            raise SamApiError(f"port {self.port} on {HOST} is in use; choose another")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.image = ensure()
        self.network = self._stack.enter_context(BridgeNetwork())
        moto = self._stack.enter_context(MotoServer(log_path=self.work_dir / "moto.log"))
        inside = self._emulator_for_containers(moto.port)
        sts = client("sts", endpoint_url=moto.url, region=REGION)
        account = str(sts.get_caller_identity()["Account"])
        doc = env_json(TEMPLATE, endpoint=inside, account_id=account, parameters=self.parameters)
        self.env_json.write_text(render(doc))
        lambda_port = free_port()
        self.lambda_url = f"http://{HOST}:{lambda_port}"
        self._serve("start-lambda", lambda_port, self.lambda_url)
        http_functions = _http_functions(self.parameters)
        cloud = LocalCloud(
            TEMPLATE, endpoint_url=moto.url, stage=self.stage, region=REGION,
            parameters=self.parameters, serve_api=False,
            elsewhere=lambda spec: self._in_container(spec, http_functions),
        )  # fmt: skip
        self.cloud = self._stack.enter_context(cloud)
        self._serve("start-api", self.port, f"{self.url}/healthz")

    def _emulator_for_containers(self, port: int) -> str:
        """The emulator's URL as the containers see it: a relay on the bridge's gateway, on
        the same port as on loopback. Where the gateway is not an address of this machine
        (Docker Desktop: it lives in Docker's VM) nothing can listen there; Docker Desktop
        forwards host.docker.internal to this machine's loopback instead (not tried here)."""
        assert self.network is not None  # set by _start before
        try:
            self._stack.enter_context(TcpRelay(self.network.gateway, port, HOST, port))
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL:
                raise
            log.warning("no relay on %s (%s): using %s", self.network.gateway, exc, DESKTOP_HOST)
            return f"http://{DESKTOP_HOST}:{port}"
        return f"http://{self.network.gateway}:{port}"

    def in_container(self, logical_id: str) -> LambdaEndpointFunction:
        """Any of the template's functions, invoked through start-lambda (tests: REST events)."""
        assert self.cloud is not None and self.cloud.stack is not None
        spec = self.cloud.stack.function(logical_id)
        return LambdaEndpointFunction(spec, self.lambda_url, REGION)

    def _in_container(self, spec: FunctionSpec, http_functions: set[str]) -> Invocable | None:
        if spec.logical_id in http_functions:
            return None  # served by start-api; LocalCloud keeps an idle local copy for env
        return LambdaEndpointFunction(spec, self.lambda_url, REGION)

    def _serve(self, command: str, port: int, ready_url: str) -> None:
        argv, env = self._sam_command(
            command, "--host", HOST, "--port", str(port), "--warm-containers", "LAZY"
        )
        log_path = self.work_dir / f"sam-{command}.log"
        self._stack.enter_context(SamServer(argv, env, log_path, ready_url))

    def _sam_command(self, *command: str) -> tuple[list[str], dict[str, str]]:
        """argv and environment for a `sam local` command on this run's stack and network."""
        assert self.network is not None  # set by _start before
        arch = host_architecture()
        parameters = {**self.parameters, "Architecture": arch}
        overrides = " ".join(f"{name}={value}" for name, value in parameters.items())
        argv = [
            str(self.sam), "local", *command, "--template", str(self.build_dir / "template.yaml"),
            "--parameter-overrides", overrides, "--env-vars", str(self.env_json),
            "--docker-network", self.network.name, "--region", REGION,
        ]  # fmt: skip
        if self.image is not None:
            argv += ["--invoke-image", self.image, "--skip-pull-image"]
        env = {
            **os.environ, **credentials_env(), "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION, "SAM_CLI_TELEMETRY": "0",
        }  # fmt: skip
        env.pop("AWS_ENDPOINT_URL", None)  # SAM's own calls stay off the emulator
        return argv, env


def _http_functions(parameters: dict[str, str]) -> set[str]:
    """Logical ids of the functions behind the HTTP API (what start-api serves)."""
    stack = Stack.from_file(TEMPLATE, parameters=parameters, region=REGION)
    return {lid for lid in stack.logical_ids(FUNCTION) if stack.http_routes(lid)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.sam_api")
    parser.add_argument("--port", default=os.environ.get("TASKQ_API_PORT", "3000"))
    args = parser.parse_args()
    if not str(args.port).isdigit() or not 0 < int(args.port) < 65536:
        print(f"taskq sam-api: port {args.port!r} is not a port number", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with SamLocalApi(port=int(args.port)) as api:
            print(_banner(api), flush=True)
            while not stopping.wait(0.5):
                pass
            print("taskq sam-api: stopping", file=sys.stderr, flush=True)
    except (SamApiError, DevError, DockerError, ImageBuildError, EmulatorError) as exc:
        print(f"taskq sam-api: {exc}", file=sys.stderr)
        return 1
    return 0


def _banner(api: SamLocalApi) -> str:
    assert api.cloud is not None and api.network is not None
    env = json.loads(api.env_json.read_text())
    return "\n".join(
        [
            f"taskq sam-api (stage {api.stage}) is running",
            f"  API       {api.url}  (sam local start-api, logs in {api.work_dir})",
            f"  image     {api.image or 'the official Lambda image'}",
            f"  network   {api.network.name}, containers reach the emulator at "
            f"{env['ApiFunction']['AWS_ENDPOINT_URL']}",
            f"  emulator  {api.cloud.endpoint_url} (moto, loopback and the bridge only)",
            f"  functions worker, sweeper, clock: sam local start-lambda on {api.lambda_url}, "
            "invoked by the local SQS poller and schedules",
            f"  try:      curl -X POST {api.url}/jobs -H 'content-type: application/json' "
            """-d '{"task":"echo","payload":{"message":"hi"}}'""",
            "Ctrl-C stops everything.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
