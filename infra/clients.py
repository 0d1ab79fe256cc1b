"""AWS clients for the local cloud and the tests: taskq.aws's factory with two settings changed.

The Lambda functions' clients (taskq.aws.client) are made the same way, from botocore; the
local cloud differs in two things only, each for a reason:

- credentials: emulators accept any key, and resolving real credentials (profiles, instance
  metadata) would only slow start-up, so without keys or a profile in the environment
  dummy keys are used (and handed on to local processes by credentials_env);
- the config: read_timeout sits above the pollers' long-poll wait, and fewer retries ride
  over an emulator hiccup without stretching a failing test.

Clients are not cached (taskq.aws.client is): each poller, provisioning run and test gets its
own, as it would from a fresh boto3 session.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.config import Config

from taskq.aws import Keys, new_client

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_DUMMY_KEYS = Keys(
    DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"], DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
)
_PASS_THROUGH = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=30,
    max_pool_connections=20,
)


def _caller_has_credentials() -> bool:
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"))


def credentials_env() -> dict[str, str]:
    """The credential variables a local process should get: the caller's, or dummy ones."""
    if _caller_has_credentials():
        return {k: os.environ[k] for k in _PASS_THROUGH if os.environ.get(k)}
    return dict(DUMMY_CREDENTIALS)


def local_env(endpoint_url: str, region: str) -> dict[str, str]:
    """What a local process needs to reach the emulator: credentials, endpoint and region."""
    return {
        **credentials_env(),
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def client(service: str, *, endpoint_url: str | None, region: str) -> Any:
    """A client (thread-safe) bound to the endpoint and region.

    The caller's own keys or profile are left to botocore, which reads them from the
    environment as credentials_env hands them on; only without them are dummy keys given.
    """
    keys = None if _caller_has_credentials() else _DUMMY_KEYS
    return new_client(service, region, endpoint_url, config=_CONFIG, keys=keys)
