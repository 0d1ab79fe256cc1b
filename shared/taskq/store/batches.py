"""DynamoDB's batch calls hand back what they did not process (throttling); this asks
again for the rest, with a short capped backoff, a bounded number of times."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from taskq.errors import BackendError

BATCH_TRIES = 8


def until_processed(
    send: Callable[[dict[str, Any]], Any],
    request: dict[str, Any],
    leftover: Callable[[Any], dict[str, Any]],
    *,
    on_response: Callable[[Any], None] = lambda response: None,
    tries: int = BATCH_TRIES,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send `request`; while `leftover(response)` is not empty, send that instead.

    `on_response` sees every response (BatchGetItem returns items on each). Raises
    BackendError when DynamoDB still leaves work after `tries` calls.
    """
    for attempt in range(tries):
        response = send(request)
        on_response(response)
        request = leftover(response)
        if not request:
            return
        if attempt < tries - 1:
            sleep(min(1.0, 0.05 * 2**attempt))
    raise BackendError("DynamoDB left part of a batch unprocessed; retry later")


BATCH_GET_MAX = 100  # BatchGetItem takes at most 100 keys


def batch_get(
    send: Callable[[str, dict[str, Any]], Any],
    table: str,
    keys: list[dict[str, Any]],
    *,
    consistent: bool = True,
) -> list[dict[str, Any]]:
    """The items of `table` at `keys`, 100 keys a BatchGetItem, each call's unprocessed
    keys asked again; missing items are simply absent. Consistent reads unless asked
    otherwise (half the read units, for figures a second old may be)."""
    items: list[dict[str, Any]] = []

    def collect(response: Any) -> None:
        items.extend(response.get("Responses", {}).get(table, []))

    for start in range(0, len(keys), BATCH_GET_MAX):
        until_processed(
            lambda request: send("batch_get_item", {"RequestItems": request}),
            {table: {"Keys": keys[start : start + BATCH_GET_MAX], "ConsistentRead": consistent}},
            lambda response: response.get("UnprocessedKeys") or {},
            on_response=collect,
        )
    return items
