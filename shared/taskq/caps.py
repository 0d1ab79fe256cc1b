"""Concurrency caps: at most N attempts of a task at once (or N per value of one payload
field), across every worker and invocation.

A cap is one item in the jobs table, `id = "cap:TASK[:KEY]"`, holding a map of holders:
job id -> {token, lease}. A worker takes a slot before it claims a capped job, with a write
conditional on the version it read, which also drops holders whose lease lapsed (a killed
worker's slot comes back HOLD_MARGIN_S after its lease would have run out). It gives the
slot back after the attempt's outcome is written, conditional on its own token, so a
lapsed holder that wakes up late cannot free a slot someone else took over.

A job that finds no free slot is not claimed (no attempt is used): its message is sent
again with a short jittered delay and the delivered one acknowledged, so the wait never
counts towards the queue's maxReceiveCount.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskq.aio import AsyncCaller
from taskq.aws import ConditionFailed

CAP_PREFIX = "cap:"
TAKE_TRIES = 3  # version races lost in a row before the job waits like a full cap's
WAIT_S = (1.0, 5.0)  # a job that found no free slot comes back after this, jittered
CONCURRENCY_MAX = 1000
# A slot outlives its attempt's lease by this much: the claim (and its lease) comes after
# the take, so a killed attempt's slot must not return before its lease has lapsed.
HOLD_MARGIN_S = 2.0


@dataclass(frozen=True)
class Cap:
    """A task's cap as declared: `limit` attempts at once, per value of `key` if given."""

    limit: int
    key: str | None = None

    def item_id(self, task: str, payload: Any) -> str:
        if self.key is None:
            return f"{CAP_PREFIX}{task}"
        value = payload.get(self.key) if isinstance(payload, dict) else None
        digest = hashlib.sha256(repr(value).encode()).hexdigest()[:24]
        return f"{CAP_PREFIX}{task}:{digest}"


@dataclass(frozen=True)
class Hold:
    """A slot taken: the cap's item, the job holding it, and this claim's own token."""

    cap_id: str
    job_id: str
    token: str
    until: float  # the slot's lease as written


def live(holders: Mapping[str, float], now: float) -> dict[str, float]:
    """The holders whose lease still runs."""
    return {holder: lease for holder, lease in holders.items() if lease >= now}


def wait_s(rand: Callable[[], float] = random.random) -> int:
    """How long a job that found no free slot waits before it looks again (whole s)."""
    low, high = WAIT_S
    return max(1, round(low + (high - low) * rand()))


class Caps:
    """Takes and gives back slots, over the worker's async DynamoDB client."""

    def __init__(self, table: str, dynamodb: AsyncCaller, clock: Callable[[], float]) -> None:
        self.table = table
        self.db = dynamodb
        self.clock = clock
        # One take at a time in this process: a batch's records racing each other for one
        # cap item would mostly lose the version race and read and write again (measured:
        # 3 reads and 4 writes a job for 5 capped jobs in one batch, against 1 and 2).
        self._taking = asyncio.Lock()

    async def take(self, cap: Cap, cap_id: str, job_id: str, hold_s: float) -> Hold | None:
        """A slot for `job_id` for `hold_s` from the write that takes it, or None when the
        cap is full. The lease counts from the write, not from the call: a take that waited
        behind others in this process must not start with part of its lease spent."""
        async with self._taking:
            return await self._take(cap, cap_id, job_id, hold_s)

    async def _take(self, cap: Cap, cap_id: str, job_id: str, hold_s: float) -> Hold | None:
        for _ in range(TAKE_TRIES):
            item = (await self._get(cap_id)) or {}
            holders = {
                name: float(value["M"]["lease"]["N"])
                for name, value in item.get("holders", {}).get("M", {}).items()
            }
            now = self.clock()
            running = live(holders, now)
            if job_id in running or len(running) >= cap.limit:
                # Full; or this job holds a slot under a live lease (it runs elsewhere,
                # and this is a duplicate delivery): wait, and let its claim decide later.
                return None
            hold = Hold(cap_id, job_id, uuid.uuid4().hex, self.clock() + hold_s)
            # Lapsed holders go (this job's own lapsed hold is overwritten instead).
            lapsed = [name for name in holders if name not in running and name != job_id]
            try:
                await self.db.call("update_item", self._take_request(item, hold, lapsed))
            except ConditionFailed:
                continue  # another worker changed the cap between our read and write
            return hold
        return None

    async def release(self, hold: Hold) -> None:
        """Give the slot back (only ours: a token that was taken over is left alone)."""
        request = {
            "TableName": self.table,
            "Key": {"id": {"S": hold.cap_id}},
            "UpdateExpression": "REMOVE holders.#me",
            "ConditionExpression": "holders.#me.#token = :token",
            "ExpressionAttributeNames": {"#me": hold.job_id, "#token": "token"},
            "ExpressionAttributeValues": {":token": {"S": hold.token}},
        }
        # Refused: our lease lapsed and the slot went to another attempt, not ours to free.
        with contextlib.suppress(ConditionFailed):
            await self.db.call("update_item", request)

    async def _get(self, cap_id: str) -> dict[str, Any] | None:
        request = {"TableName": self.table, "Key": {"id": {"S": cap_id}}, "ConsistentRead": True}
        item: dict[str, Any] | None = (await self.db.call("get_item", request)).get("Item")
        return item

    def _take_request(self, item: dict[str, Any], hold: Hold, lapsed: list[str]) -> dict[str, Any]:
        entry = {"M": {"token": {"S": hold.token}, "lease": {"N": repr(hold.until)}}}
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if "version" not in item:
            # The cap's first holder: the item (or its map) does not exist yet.
            update = "SET holders = :holders, version = :one"
            condition = "attribute_not_exists(version)"
            values = {":holders": {"M": {hold.job_id: entry}}, ":one": {"N": "1"}}
        else:
            # Only on the version read: two workers seeing one free slot take it once.
            names["#me"] = hold.job_id
            update = "SET holders.#me = :hold, version = version + :one"
            condition = "version = :seen"
            values = {":hold": entry, ":one": {"N": "1"}, ":seen": item["version"]}
            removed = []
            for n, name in enumerate(lapsed):
                names[f"#l{n}"] = name
                removed.append(f"holders.#l{n}")
            if removed:
                update += " REMOVE " + ", ".join(removed)
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"id": {"S": hold.cap_id}},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        return request
