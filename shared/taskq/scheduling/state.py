"""What the clock remembers of each periodic schedule, in the jobs table: how far it has
fired (its watermark), whether an operator paused it, and its latest job.

One small item per schedule (`id = "schedule:NAME"`), beside the jobs: it has none of a
job's indexed attributes, so no listing ever meets it, and job ids (32 hex digits) can
never name it. Pause state lives here, so it survives restarts and deploys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from taskq.aws import ConditionFailed, call
from taskq.store.batches import batch_get
from taskq.text import stored_time

_PREFIX = "schedule:"  # a job id is 32 hex digits: no job's id starts so


@dataclass(frozen=True)
class ScheduleState:
    name: str
    watermark: float | None = None  # fires up to this time (epoch s) are handled
    paused: bool = False
    last_job: str | None = None  # the job of the latest fire (or trigger)
    changed_by: str | None = None  # who paused or resumed it last


class ScheduleStates:
    def __init__(
        self, table: str, dynamodb: Any, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.table = table
        self.db = dynamodb
        self.clock = clock

    def read(self, names: Sequence[str]) -> dict[str, ScheduleState]:
        """Every named schedule's state (a fresh one for a schedule never seen)."""
        found = {name: ScheduleState(name) for name in names}
        keys = [_key(name) for name in dict.fromkeys(names)]
        for item in batch_get(self._send, self.table, keys):
            state = _state(item)
            found[state.name] = state
        return found

    def advance(self, seen: ScheduleState, watermark: float, last_job: str | None) -> bool:
        """Record that fires up to `watermark` are handled. False: another clock moved the
        watermark since `seen` was read (its jobs are the same ones: ids are per fire)."""
        values: dict[str, Any] = {
            ":w": {"N": repr(watermark)},
            ":at": {"S": stored_time(self.clock())},
        }
        update = "SET watermark = :w, updated_at = :at"
        if last_job is not None:
            update += ", last_job = :j"
            values[":j"] = {"S": last_job}
        if seen.watermark is None:
            condition = "attribute_not_exists(watermark)"
        else:
            condition = "watermark = :seen"
            values[":seen"] = {"N": repr(seen.watermark)}
        try:
            self._update(seen.name, update, values, condition)
        except ConditionFailed:
            return False
        return True

    def set_paused(
        self, name: str, paused: bool, actor: str, *, watermark: float | None = None
    ) -> None:
        """Pause or resume; a resume may move the watermark (no catch-up for the pause)."""
        values: dict[str, Any] = {
            ":p": {"BOOL": paused},
            ":by": {"S": actor[:200]},
            ":at": {"S": stored_time(self.clock())},
        }
        update = "SET paused = :p, changed_by = :by, updated_at = :at"
        if watermark is not None:
            update += ", watermark = :w"
            values[":w"] = {"N": repr(watermark)}
        self._update(name, update, values, None)

    def note_job(self, name: str, job_id: str) -> None:
        """A fire's job outside the clock (a trigger): the latest job the overlap check sees."""
        values = {":j": {"S": job_id}, ":at": {"S": stored_time(self.clock())}}
        self._update(name, "SET last_job = :j, updated_at = :at", values, None)

    def _update(
        self, name: str, update: str, values: dict[str, Any], condition: str | None
    ) -> None:
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": _key(name),
            "UpdateExpression": update,
            "ExpressionAttributeValues": values,
        }
        if condition:
            request["ConditionExpression"] = condition
        self._send("update_item", request)

    def _send(self, operation: str, kwargs: dict[str, Any]) -> Any:
        return call(self.db, "DynamoDB", operation, kwargs)


def _key(name: str) -> dict[str, Any]:
    return {"id": {"S": f"{_PREFIX}{name}"}}


def _state(item: dict[str, Any]) -> ScheduleState:
    def text(attr: str) -> str | None:
        return item[attr]["S"] if attr in item else None

    return ScheduleState(
        name=item["id"]["S"].removeprefix(_PREFIX),
        watermark=float(item["watermark"]["N"]) if "watermark" in item else None,
        paused=bool(item.get("paused", {}).get("BOOL")),
        last_job=text("last_job"),
        changed_by=text("changed_by"),
    )
