"""AWS clients, created once per process (Lambda re-uses them) and honouring AWS_ENDPOINT_URL."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import boto3
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


@lru_cache(maxsize=8)
def client(service: str, region: str, endpoint_url: str | None = None) -> Any:
    """One client per (service, region, endpoint) per process; boto3 clients are thread-safe."""
    session: Any = boto3.session.Session()
    return session.client(
        service, region_name=region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
    )


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
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed(cast("dict[str, Any] | None", exc.response.get("Item"))) from None
        raise BackendError(f"{service} {operation} failed: {code or exc}") from exc
    except BotoCoreError as exc:
        raise BackendError(f"{service} {operation} failed: {exc}") from exc
