"""AWS clients, created once per process (Lambda re-uses them) and honouring AWS_ENDPOINT_URL.

Clients come from botocore directly: boto3 adds nothing taskq uses, and importing it
pulls in s3transfer and multiprocessing, a fifth of a second of every cold start.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from taskq.errors import BackendError

# Standard retry mode backs off on throttling and 5xx; connect/read timeouts are kept
# short so a stuck call fails inside a Lambda's budget instead of eating all of it.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=20,
)


_creating = threading.Lock()  # botocore sessions are not safe to create clients concurrently
# One session for all of a process's clients: a session reads botocore's endpoint data and
# its list of services once, and a second session read them again (measured: the DynamoDB
# and SQS clients took ~110 ms from one session, ~285 ms from two, of every cold start).
_session: Any = None


@lru_cache(maxsize=8)
def client(service: str, region: str, endpoint_url: str | None = None) -> Any:
    """One client per (service, region, endpoint) per process; clients are thread-safe."""
    global _session
    with _creating:
        if _session is None:
            _session = botocore.session.get_session()
        return _session.create_client(
            service, region_name=region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
        )


def forget_clients() -> None:
    """Drop the process's clients and their session (a test that starts a process afresh:
    the next client reads credentials and settings from the environment again)."""
    global _session
    with _creating:
        client.cache_clear()
        _session = None


class ConditionFailed(Exception):
    """A DynamoDB condition check failed; carries the item as it was, when DynamoDB sent it."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition check failed")
        self.item = item


def call(client: Any, service: str, operation: str, kwargs: dict[str, Any]) -> Any:
    """Call `operation`, turning AWS failures into BackendError (after botocore's retries)
    and a failed DynamoDB condition into ConditionFailed, which callers decide about."""
    try:
        return getattr(client, operation)(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, service, operation) from exc


async def acall(client: Any, service: str, operation: str, kwargs: dict[str, Any]) -> Any:
    """`call` for an aiobotocore client: the same errors, awaited."""
    try:
        return await getattr(client, operation)(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, service, operation) from exc


def translate(exc: ClientError | BotoCoreError, service: str, operation: str) -> Exception:
    """The taskq error for an AWS failure: ConditionFailed or BackendError."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            return ConditionFailed(cast("dict[str, Any] | None", exc.response.get("Item")))
        return BackendError(f"{service} {operation} failed: {code or exc}")
    return BackendError(f"{service} {operation} failed: {exc}")
