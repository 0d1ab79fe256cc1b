"""The Docker engine as the `sam local` paths use it: is one there, images, a run's own network.

Everything goes through the `docker` command (what SAM itself needs anyway), each call
bounded in time. A run creates a network of its own (`BridgeNetwork`): its containers reach
services on this machine through that bridge's gateway address, and when the run ends its
containers and the network are removed, whatever happened.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from typing import IO, Any

from infra.service import Service

ENGINE_TIMEOUT_S = 10.0


class DockerError(Exception):
    """The Docker engine is missing or refused a command; the message is one line."""


def docker(
    *args: str, stdin: IO[bytes] | None = None, timeout: float = 60.0, check: bool = True
) -> str:
    """Run one docker command and return its output (stripped); DockerError if it fails."""
    if shutil.which("docker") is None:
        raise DockerError("the docker command is not installed")
    try:
        done = subprocess.run(
            ["docker", *args], stdin=stdin, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"docker {args[0]} did not finish within {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise DockerError(f"docker {args[0]}: {lines[-1] if lines else done.returncode}")
    return str(done.stdout.decode(errors="replace").strip())


def engine_answers() -> bool:
    """True when a Docker engine answers the docker command (its server version)."""
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=ENGINE_TIMEOUT_S)
    except DockerError:
        return False
    return True


def image_label(image: str, label: str) -> str | None:
    """The image's label value ("" for none or no label asked); None when there is no image."""
    try:
        out = docker("image", "inspect", "--format", "{{json .Config.Labels}}", image)
    except DockerError:
        return None
    labels: dict[str, Any] = json.loads(out) or {}
    return str(labels.get(label, "")) if label else ""


class BridgeNetwork(Service):
    """A bridge network of this run's own (`taskq-sam-<random>`); a context manager.

    `gateway` is the address this machine has on it: what containers on the network use to
    reach a service here, which must listen on that address (and not beyond this machine).
    """

    def __init__(self, prefix: str = "taskq-sam") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.gateway = ""
        self._created = False

    def start(self) -> BridgeNetwork:
        docker("network", "create", "--driver", "bridge", "--label", "taskq.run=1", self.name)
        self._created = True
        try:
            out = docker("network", "inspect", "--format", "{{json .IPAM.Config}}", self.name)
            configs: list[dict[str, Any]] = json.loads(out) or []
            self.gateway = next(str(c["Gateway"]) for c in configs if c.get("Gateway"))
        except (DockerError, StopIteration, KeyError, ValueError) as exc:
            self.stop()
            raise DockerError(f"network {self.name} has no gateway address") from exc
        return self

    def containers(self) -> list[str]:
        """Ids of every container attached to the network, running or not."""
        out = docker("ps", "-aq", "--filter", f"network={self.name}")
        return out.split()

    def stop(self) -> None:
        """Remove the network's containers (SAM's, if it left any), then the network."""
        if not self._created:
            return
        ids = self.containers()
        if ids:
            docker("rm", "-f", *ids, check=False)
        docker("network", "rm", self.name, check=False)
        self._created = False


def main() -> int:
    """`python -m infra.docker_engine`: exit 0 when an engine answers, else one line and 1."""
    if engine_answers():
        return 0
    print("no Docker engine answers (start dockerd, or Docker Desktop)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
