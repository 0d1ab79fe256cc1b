"""`make test-localstack`: the integration suite against LocalStack (or any AWS endpoint).

The suite's emulator fixture uses the endpoint in TASKQ_TEST_ENDPOINT instead of starting
moto; provisioning still reads template.yaml, so nothing else changes. When nothing answers
at the endpoint the run is skipped with one line and succeeds: CI has no Docker.

    python -m infra.localstack [pytest args...]    # endpoint: AWS_ENDPOINT_URL or :4566
    python -m infra.localstack provision           # create the `make dev` stack there
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from infra.emulator import endpoint_reachable
from infra.provision import provision
from infra.samlocal import LOCAL_PARAMETERS, LOCAL_REGION
from infra.service import Service
from infra.template import Stack

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENDPOINT = "http://localhost:4566"
TEST_ENDPOINT_ENV = "TASKQ_TEST_ENDPOINT"  # read by tests/integration/conftest.py


class ExternalEndpoint(Service):
    """An emulator run by someone else, shaped like infra.emulator.MotoServer for the tests
    (url, port; a context manager) but never started or stopped here."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.port = parts.port or (443 if parts.scheme == "https" else 80)

    def start(self) -> ExternalEndpoint:
        if not endpoint_reachable(self.url):
            raise ConnectionError(f"nothing answers at {self.url}")
        return self

    def stop(self) -> None:
        pass


def endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    url = endpoint()
    provisioning = args[:1] == ["provision"]
    if not endpoint_reachable(url):
        hint = "start LocalStack with `docker compose up -d`, or set AWS_ENDPOINT_URL"
        if provisioning:
            print(f"localstack: nothing answers at {url} ({hint})", file=sys.stderr)
            return 1
        print(f"test-localstack: skipped, nothing answers at {url} ({hint})")
        return 0
    if provisioning:
        stack = Stack.from_file(
            ROOT / "template.yaml", parameters=LOCAL_PARAMETERS, region=LOCAL_REGION
        )
        made = provision(stack, endpoint_url=url, region=LOCAL_REGION)
        print(
            f"provisioned on {url}: {', '.join([*made.tables.values(), *made.queue_urls.values()])}"
        )
        return 0
    env = {**os.environ, TEST_ENDPOINT_ENV: url}
    command = [sys.executable, "-m", "pytest", "tests/integration", "-m", "not sam", *args]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
