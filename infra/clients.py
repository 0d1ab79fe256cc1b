"""boto3 clients for the local cloud: explicit endpoint and region, dummy keys when none are set.

Emulators accept any key, and resolving real credentials (profiles, instance metadata)
would only slow start-up, so without keys or a profile in the environment dummy keys are used.

Why not taskq.aws's botocore factory, as the functions use: measured, not assumed. With the
local cloud's clients made by it (2026-12-02), the fault suite's submissions mostly failed
(1 of 60 accepted, against 60 of 60 with these boto3 sessions, same machine and load); the
cause was not pinned down, so the local cloud keeps the factory that is proven under faults.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_PASS_THROUGH = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")

# read_timeout sits above the pollers' long-poll wait; retries ride over an emulator hiccup.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=30,
    max_pool_connections=20,
)


def credentials_env() -> dict[str, str]:
    """The credential variables a local process should get: the caller's, or dummy ones."""
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return {k: os.environ[k] for k in _PASS_THROUGH if os.environ.get(k)}
    return dict(DUMMY_CREDENTIALS)


def client(service: str, *, endpoint_url: str | None, region: str) -> Any:
    """A boto3 client (thread-safe) bound to the endpoint and region."""
    creds = credentials_env()
    session = boto3.session.Session(
        aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        profile_name=creds.get("AWS_PROFILE"),
        region_name=region,
    )
    make: Any = session.client  # typed per service by boto3-stubs; the service is a variable here
    return make(service, endpoint_url=endpoint_url, config=_CONFIG)


def local_env(endpoint_url: str, region: str) -> dict[str, str]:
    """What a local process needs to reach the emulator: credentials, endpoint and region."""
    return {
        **credentials_env(),
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
