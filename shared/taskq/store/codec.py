"""The item codec: a job as DynamoDB stores it, and back; its events; listing cursors.

Nothing here talks to AWS. The transitions and reads build on these shapes, so a field's
spelling lives in one place.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from taskq.errors import InvalidRequest
from taskq.models import DEFAULT_TENANT, Event, Job, Priority, Progress, Status, is_job_id
from taskq.text import parse_stored_time, stored_time

Item = dict[str, Any]
ERROR_MAX_CHARS = 2000  # keep one error from eating the 400 KB item budget
DETAIL_MAX_CHARS = 200
CURSOR_MAX_CHARS = 1024
# The wake index (by_wake) holds only scheduled jobs, sorted by due time, in two
# partitions by what wakes them: the clock (delayed past SQS's 15 minutes, no message yet),
# or the SQS message already sent. The clock reads the first, the sweeper the second, each
# with one Query over just the jobs due by then.
WAKE_BY_CLOCK = "clock"
WAKE_BY_MESSAGE = "sqs"
# The phase index (by_phase) is what listings, the sweeper and the counts read. Its key is
# the job's phase, which changes at most once on the happy path (live -> its outcome), so
# the claim and every progress report leave the index alone: "live" holds the unfinished
# jobs SQS brings (pending, running, retrying, and scheduled within SQS's 15-minute delay),
# "waiting" the jobs the clock wakes (scheduled further ahead: months of them must not be
# read by every sweep), and a finished job's phase is its outcome (completed, failed,
# cancelled), with finished_at beside it in the index for the per-minute chart.
PHASE_LIVE = "live"
PHASE_WAITING = "waiting"


@dataclass(frozen=True)
class NewJob:
    """A job about to be created: validated, serialised, with its id already chosen."""

    job_id: str
    task: str
    payload_json: str
    max_attempts: int
    idempotency_key: str | None = None
    request_hash: str | None = None
    tenant: str = DEFAULT_TENANT
    run_at: float | None = None  # asked to run then (epoch seconds); None: at once
    wakes_by_clock: bool = False  # too far ahead for an SQS delay: the clock sends it
    schedule: str | None = None  # the periodic schedule whose fire this is
    priority: Priority = Priority.DEFAULT

    def is_scheduled(self, now: float) -> bool:
        """Not to be run yet: created `scheduled`, claimable from run_at on."""
        return self.run_at is not None and self.run_at > now


def new_item(new: NewJob, now: float) -> Item:
    """The item of a job just submitted: pending (or scheduled), attempt 0, its first event."""
    status = Status.SCHEDULED if new.is_scheduled(now) else Status.PENDING
    item: Item = {
        "id": {"S": new.job_id},
        "task": {"S": new.task},
        "payload": {"S": new.payload_json},
        "status": {"S": status},
        "attempt": {"N": "0"},
        "max_attempts": {"N": str(new.max_attempts)},
        "created_at": {"S": stored_time(now)},
        "updated_at": {"S": stored_time(now)},
        "tenant": {"S": new.tenant},
        # The listing indexes' sort key: a tenant's jobs form one key range, in time order.
        "tenant_created": {"S": f"{new.tenant}#{stored_time(now)}"},
        "events": {"L": [event(status, now)]},
    }
    item["phase"] = {
        "S": PHASE_WAITING if status == Status.SCHEDULED and new.wakes_by_clock else PHASE_LIVE
    }
    if new.run_at is not None:
        item["run_at"] = {"N": repr(new.run_at)}
    if status == Status.SCHEDULED:
        item["run_after"] = {"N": repr(new.run_at)}  # the claim's gate, as for a retry
        item["wake"] = {"S": WAKE_BY_CLOCK if new.wakes_by_clock else WAKE_BY_MESSAGE}
        item["wake_at"] = {"N": repr(new.run_at)}
    if new.schedule:
        item["schedule"] = {"S": new.schedule}
    if new.priority != Priority.DEFAULT:  # stored only when not the default: items stay small
        item["priority"] = {"S": new.priority}
    if new.idempotency_key:
        item["idempotency_key"] = {"S": new.idempotency_key}
    if new.request_hash:
        item["request_hash"] = {"S": new.request_hash}
    return item


def is_job_item(item: Mapping[str, Any]) -> bool:
    """Whether a jobs-table item is a job: the table also holds schedules' state and
    concurrency caps' slots, whose ids are never 32 hex digits (what a Scan meets)."""
    return is_job_id(str(item.get("id", {}).get("S", "")))


def key(job_id: str) -> Item:
    return {"id": {"S": job_id}}


def number(item: Mapping[str, Any], name: str) -> float | None:
    value = item.get(name)
    return float(value["N"]) if value else None


def clip(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event(
    kind: str,
    now: float,
    *,
    error: str | None = None,
    delay_s: int | None = None,
    detail: str | None = None,
    reset: bool = False,
) -> Item:
    """An event as stored. Its attempt number is derived on read (see to_events)."""
    entry: Item = {"kind": {"S": str(kind)}, "at": {"S": stored_time(now)}}
    if error is not None:
        entry["error"] = {"S": clip(error)}
    if delay_s is not None:
        entry["delay_s"] = {"N": str(delay_s)}
    if detail is not None:
        entry["detail"] = {"S": detail[:DETAIL_MAX_CHARS]}
    if reset:
        entry["reset"] = {"BOOL": True}
    return {"M": entry}


def to_events(stored: list[Item]) -> tuple[Event, ...]:
    """Number each event by attempt: every claim starts one; a resetting redrive restarts."""
    attempt = 0
    events = []
    for raw in stored:
        entry = raw["M"]
        kind = entry["kind"]["S"]
        if kind == Status.RUNNING:
            attempt += 1
        elif kind == "redriven" and entry.get("reset", {}).get("BOOL"):
            attempt = 0
        events.append(
            Event(
                kind=kind,
                attempt=attempt,
                at=parse_stored_time(entry["at"]["S"]),
                error=entry.get("error", {}).get("S"),
                delay_s=int(entry["delay_s"]["N"]) if "delay_s" in entry else None,
                detail=entry.get("detail", {}).get("S"),
            )
        )
    return tuple(events)


def to_job(item: Mapping[str, Any]) -> Job:
    def text(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value else None

    result = text("result")
    expires = number(item, "expires_at")
    return Job(
        id=item["id"]["S"],
        task=item["task"]["S"],
        payload=json.loads(item["payload"]["S"]),
        status=Status(item["status"]["S"]),
        attempt=int(item["attempt"]["N"]),
        max_attempts=int(item["max_attempts"]["N"]),
        created_at=parse_stored_time(item["created_at"]["S"]),
        tenant=text("tenant") or DEFAULT_TENANT,
        updated_at=parse_stored_time(item["updated_at"]["S"]),
        result=json.loads(result) if result is not None else None,
        error=text("error"),
        lease_until=number(item, "lease_until"),
        run_after=number(item, "run_after"),
        expires_at=int(expires) if expires is not None else None,
        idempotency_key=text("idempotency_key"),
        request_hash=text("request_hash"),
        events=to_events(item.get("events", {}).get("L", [])),
        handoff=text("handoff"),
        handoff_until=number(item, "handoff_until"),
        dead_lettered=bool(item.get("dead_lettered", {}).get("BOOL")),
        run_at=number(item, "run_at"),
        schedule=text("schedule"),
        priority=Priority(text("priority") or Priority.DEFAULT),
        wakes_by_clock=item.get("wake", {}).get("S") == WAKE_BY_CLOCK,
        progress=_progress(text("progress")),
    )


def _progress(stored: str | None) -> Progress | None:
    """The progress attribute, written by the worker as Progress's JSON (taskq.progress)."""
    if stored is None:
        return None
    try:
        return Progress.model_validate_json(stored)
    except ValueError:  # never written so; an unreadable report must not hide the job
        return None


# --- cursors -----------------------------------------------------------------------


def encode_cursor(index: str, last_key: Mapping[str, Any]) -> str:
    plain = {name: value["S"] for name, value in last_key.items()}
    raw = json.dumps({"i": index, "k": plain}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str,
    index: str,
    key_attr: str,
    tenant: str | None = None,
    partitions: Collection[str] | None = None,
) -> Item:
    """Accept only a cursor this store could have made for this very query.

    A listing that reads several partitions of an index in turn (`partitions`) also makes
    cursors that hold only the partition to start next, from its newest entry.
    """
    invalid = InvalidRequest("invalid cursor: pass back next_cursor unchanged", field="cursor")
    if len(cursor) > CURSOR_MAX_CHARS:
        raise invalid
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    keys = data.get("k") if isinstance(data, dict) else None
    if (
        not isinstance(keys, dict)
        or data.get("i") != index
        or set(keys) not in ({"id", "tenant_created", key_attr}, {key_attr})
        or (set(keys) == {key_attr} and partitions is None)
        or not all(isinstance(v, str) and 0 < len(v) <= 256 for v in keys.values())
        or (partitions is not None and keys[key_attr] not in partitions)
        or (
            tenant is not None
            and "tenant_created" in keys
            and not keys["tenant_created"].startswith(f"{tenant}#")
        )
    ):
        raise invalid
    return {name: {"S": value} for name, value in keys.items()}
