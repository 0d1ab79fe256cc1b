"""AWS clients, created once per process (Lambda re-uses them) and honouring AWS_ENDPOINT_URL."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling and 5xx; connect/read timeouts are kept
# short so a stuck call fails inside a Lambda's budget instead of eating all of it.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=20,
)


@lru_cache(maxsize=8)
def client(service: str, region: str, endpoint_url: str | None = None) -> Any:
    """One client per (service, region, endpoint) per process; boto3 clients are thread-safe."""
    session: Any = boto3.session.Session()
    return session.client(
        service, region_name=region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
    )
