"""`make sam-api`: the API served by `sam local start-api` in Lambda containers, on the
embedded emulator, with the worker, sweeper and clock run by the local runners.

What starts, in order (stopped in reverse, also on failure or Ctrl-C):

1. the Lambda base image: AWS's if it is present, else the stand-in (infra/lambda_image.py);
2. a Docker bridge network of this run's own (infra/docker_engine.py);
3. moto's server on 127.0.0.1, and a relay on the network's gateway address to it, so the
   containers reach the emulator and nothing beyond this machine does;
4. the stack provisioned from template.yaml, and the worker's event-source pollers, the
   sweeper's and clock's schedules (LocalCloud without its own HTTP gateway);
5. env.json for the containers, generated (endpoint: the gateway; the emulator's account);
6. `sam local start-api` on 127.0.0.1:PORT from the host build (.aws-sam/host/build).

    python -m infra.sam_api [--port 3000]        # serve until Ctrl-C (make sam-api)
"""

from __future__ import annotations

import argparse
import contextlib
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
from typing import IO, Any

from infra.clients import credentials_env
from infra.docker_engine import BridgeNetwork, DockerError, engine_answers
from infra.emulator import EmulatorError, MotoServer, endpoint_reachable, port_in_use
from infra.lambda_image import ImageBuildError, ensure
from infra.local_cloud import LocalCloud
from infra.samlocal import env_json, host_architecture, render
from infra.service import Service
from infra.tcp_relay import TcpRelay

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
HOST_BUILD = ROOT / ".aws-sam" / "host" / "build"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
HOST = "127.0.0.1"
REGION = "us-east-1"
START_TIMEOUT_S = 90.0  # sam's start plus the API container's first (cold) start
# What the functions run with here, as `make dev` does: no API keys, on loopback only.
PARAMETERS = {"AuthMode": "off"}


class SamApiError(Exception):
    """Something to fix before `sam local start-api` can serve; one line."""


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
        self.image: str | None = None
        self.cloud: LocalCloud | None = None
        self.network: BridgeNetwork | None = None
        self.env_json = work_dir / "env.json"
        self.log_path = work_dir / "sam.log"
        self._stack = contextlib.ExitStack()
        self._sam: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> SamLocalApi:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if not engine_answers():
            raise SamApiError("no Docker engine answers (start dockerd or Docker Desktop)")
        if not (self.build_dir / "template.yaml").exists():
            raise SamApiError(f"no host build in {self.build_dir} (make sam-api builds it)")
        if port_in_use(HOST, self.port):
            raise SamApiError(f"port {self.port} on {HOST} is in use; choose another")
        self.image = ensure()
        self.network = self._stack.enter_context(BridgeNetwork())
        moto = self._stack.enter_context(MotoServer(log_path=self.work_dir / "moto.log"))
        # The same port on the bridge as on loopback, so the two addresses differ only by host.
        relay = TcpRelay(self.network.gateway, moto.port, HOST, moto.port)
        self._stack.enter_context(relay)
        cloud = LocalCloud(
            TEMPLATE, endpoint_url=moto.url, stage=self.stage, region=REGION,
            parameters=PARAMETERS, serve_api=False,
        )  # fmt: skip
        self.cloud = self._stack.enter_context(cloud)
        account = next(iter(self.cloud.resources.queue_arns.values())).split(":")[4]
        inside = f"http://{self.network.gateway}:{moto.port}"
        doc = env_json(
            TEMPLATE, endpoint=inside, account_id=account,
            parameters={**PARAMETERS, "Stage": self.stage},
        )  # fmt: skip
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.env_json.write_text(render(doc))
        self._start_sam()

    def _sam_command(self, *command: str) -> tuple[list[str], dict[str, str]]:
        """argv and environment for a `sam local` command on this run's stack and network."""
        assert self.network is not None  # set by _start before
        arch = host_architecture()
        overrides = " ".join(
            f"{k}={v}" for k, v in {**PARAMETERS, "Stage": self.stage, "Architecture": arch}.items()
        )
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

    def invoke(self, function: str, event: Path, timeout: float = 120.0) -> dict[str, Any]:
        """`sam local invoke FUNCTION --event EVENT` in a fresh container: its JSON answer."""
        argv, env = self._sam_command("invoke", function, "--event", str(event))
        done = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SamApiError(f"sam local invoke {function} failed: {tail}")
        lines = done.stdout.strip().splitlines()
        answer: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        return answer

    def _start_sam(self) -> None:
        argv, env = self._sam_command(
            "start-api", "--host", HOST, "--port", str(self.port), "--warm-containers", "LAZY"
        )
        self._log = open(self.log_path, "w+b")  # noqa: SIM115 - closed in stop()
        self._sam = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._sam.poll() is not None:
                raise SamApiError(f"sam local start-api exited: {self._log_tail()}")
            if endpoint_reachable(f"{self.url}/healthz", timeout=30.0):
                return
            time.sleep(0.5)
        raise SamApiError(f"sam local start-api did not answer within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Stop sam (SIGINT by its pid, so it removes its warm containers), then the rest."""
        proc, self._sam = self._sam, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        self._stack.close()  # network (and any container left on it), cloud, relay, moto

    def _log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1] if lines else "(no output)"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.sam_api")
    parser.add_argument("--port", type=int, default=int(os.environ.get("TASKQ_API_PORT", 3000)))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with SamLocalApi(port=args.port) as api:
            print(_banner(api), flush=True)
            while not stopping.wait(0.5):
                pass
            print("taskq sam-api: stopping", file=sys.stderr, flush=True)
    except (SamApiError, DockerError, ImageBuildError, EmulatorError) as exc:
        print(f"taskq sam-api: {exc}", file=sys.stderr)
        return 1
    return 0


def _banner(api: SamLocalApi) -> str:
    assert api.cloud is not None and api.network is not None
    env = json.loads(api.env_json.read_text())
    return "\n".join(
        [
            f"taskq sam-api (stage {api.stage}) is running",
            f"  API       {api.url}  (sam local start-api, log {api.log_path})",
            f"  image     {api.image or 'the official Lambda image'}",
            f"  network   {api.network.name}, containers reach the emulator at "
            f"{env['ApiFunction']['AWS_ENDPOINT_URL']}",
            f"  emulator  {api.cloud.endpoint_url} (moto, loopback and the bridge only)",
            "  worker    the local SQS poller runs the worker handler; sweeper and clock too",
            f"  try:      curl -X POST {api.url}/jobs -H 'content-type: application/json' "
            """-d '{"task":"echo","payload":{"message":"hi"}}'""",
            "Ctrl-C stops everything.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
