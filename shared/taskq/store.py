"""DynamoDB job store: the one module that writes a job's status.

Every transition is a single conditional UpdateItem that also appends the event to
the job's history, so a status and its history never disagree and no transition
costs a second write. The attempt number is the fencing token: a worker may only
finish the attempt it claimed.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskq.aws import ConditionFailed, call
from taskq.backoff import expires_at, is_expired
from taskq.errors import BackendError, InvalidRequest, InvalidTransition, JobNotFound
from taskq.models import DEFAULT_TENANT, Event, Job, Status

Item = dict[str, Any]
BATCH_WRITE_MAX = 25  # BatchWriteItem's limit per call
ERROR_MAX_CHARS = 2000  # keep one error from eating the 400 KB item budget
LIST_LIMIT_MAX = 100
BATCH_GET_MAX = 100  # BatchGetItem takes at most 100 keys
BATCH_GET_TRIES = 5


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso(epoch: float) -> str:
    """Fixed-width UTC timestamps, so string order is time order in the indexes."""
    return datetime.fromtimestamp(epoch, UTC).strftime(TIME_FORMAT)


class JobStore:
    def __init__(
        self,
        table_name: str,
        dynamodb: Any,
        *,
        retention_days: int = 14,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table_name
        self.db = dynamodb
        self.retention_days = retention_days
        self.clock = clock

    # --- reads -------------------------------------------------------------------

    def find(self, job_id: str, tenant: str | None = None) -> Job | None:
        """The job, or None if missing, expired, or (with `tenant`) another tenant's."""
        item = self._call("get_item", Key=_key(job_id), ConsistentRead=True).get("Item")
        if item is None or is_expired(_num(item, "expires_at"), self.clock()):
            return None
        job = to_job(item)
        return job if tenant is None or job.tenant == tenant else None

    def get(self, job_id: str, tenant: str | None = None) -> Job:
        job = self.find(job_id, tenant)
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        return job

    def list_jobs(
        self,
        *,
        tenant: str | None = None,
        status: Status | None = None,
        task: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Newest first, by a Query on the status or task index (never a Scan).

        The indexes sort on "tenant#created_at", so one tenant's jobs are a key range:
        a tenant's listing cannot reach another's. Without a tenant (operators), jobs
        come grouped by tenant, newest first within each.
        """
        if status is None and not task:
            raise InvalidRequest("filter by status or task (or both)", field="status")
        index, key_attr, key_value = (
            ("by_status", "status", str(status)) if status else ("by_task", "task", str(task))
        )
        names = {"#k": key_attr}
        values: Item = {":k": {"S": key_value}, ":now": {"N": str(int(self.clock()))}}
        key_condition = "#k = :k"
        if tenant is not None:
            key_condition += " AND begins_with(tenant_created, :tenant)"
            values[":tenant"] = {"S": f"{tenant}#"}
        filters = ["(attribute_not_exists(expires_at) OR expires_at > :now)"]
        if status and task:
            names["#t"] = "task"
            values[":t"] = {"S": task}
            filters.append("#t = :t")
        args: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": key_condition,
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": max(1, min(limit, LIST_LIMIT_MAX)),
        }
        if cursor:
            args["ExclusiveStartKey"] = decode_cursor(cursor, index, key_attr, tenant)
        page = self._call_raw("query", args)
        jobs = [to_job(item) for item in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        return jobs, encode_cursor(index, last) if last else None

    def stalled(self, status: Status, before: float, limit: int = 100) -> list[Job]:
        """Jobs of `status` whose clock ran out before `before`: the sweeper's work list.

        pending: not touched since (never claimed); running: lease lapsed; retrying:
        retry overdue. Each is a Query on the status index, never a Scan.
        """
        field, value = {
            Status.PENDING: ("updated_at", {"S": iso(before)}),
            Status.RUNNING: ("lease_until", {"N": repr(before)}),
            Status.RETRYING: ("run_after", {"N": repr(before)}),
        }[status]
        args: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_status",
            "KeyConditionExpression": "#s = :s",
            # updated_at too: a job the sweeper re-sent waits a full window before the next.
            "FilterExpression": "#f < :before AND updated_at < :before_iso",
            "ExpressionAttributeNames": {"#s": "status", "#f": field},
            "ExpressionAttributeValues": {
                ":s": {"S": status},
                ":before": value,
                ":before_iso": {"S": iso(before)},
            },
        }
        jobs: list[Job] = []
        while len(jobs) < limit:
            page = self._call_raw("query", args)
            jobs.extend(to_job(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return jobs[:limit]

    # --- transitions ---------------------------------------------------------------

    def create(self, new: NewJob) -> tuple[Job, bool]:
        """Store a new pending job. Returns (job, created); created is False when the id exists.

        An existing, unexpired job with this id is returned untouched (the caller
        decides whether that is an idempotent replay or a conflict).
        """
        now = self.clock()
        item = {**_new_item(new, now), "write_id": {"S": uuid.uuid4().hex}}
        try:
            self._call(
                "put_item",
                Item=item,
                # Two submits with one idempotency key race here: exactly one creates the
                # job; an expired leftover (TTL not yet applied) may be replaced.
                ConditionExpression="attribute_not_exists(id) OR expires_at <= :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            existing = failed.item or self._raw(new.job_id)
            if existing is None:  # deleted between the two calls: try once more
                return self.create(new)
            # Our own put, applied but its response lost, met by botocore's retry: created.
            return to_job(existing), existing.get("write_id") == item["write_id"]
        return to_job(item), True

    def create_many(self, news: Sequence[NewJob]) -> list[Job]:
        """Store many new pending jobs with BatchWriteItem (25 a call).

        Only for random ids (uuid4: 122 random bits), which cannot already exist:
        BatchWriteItem takes no condition, so jobs with idempotency keys go through
        create() one by one instead.
        """
        if any(new.idempotency_key for new in news):
            raise ValueError("create_many is for jobs without an idempotency key")
        now = self.clock()
        items = [_new_item(new, now) for new in news]
        for start in range(0, len(items), BATCH_WRITE_MAX):
            requests = [
                {"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_MAX]
            ]
            for attempt in range(8):
                response = self._call_raw(
                    "batch_write_item", {"RequestItems": {self.table: requests}}
                )
                requests = response.get("UnprocessedItems", {}).get(self.table, [])
                if not requests:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))  # throttled: back off, then retry the rest
            if requests:
                raise BackendError(f"DynamoDB kept {len(requests)} writes unprocessed")
        return [to_job(item) for item in items]

    def claim(self, job_id: str, lease_until: float) -> Job:
        """pending/retrying (or running with a lapsed lease) -> running, attempt += 1."""
        now = self.clock()
        return self._transition(
            job_id,
            "claim",
            update="SET #s = :running, attempt = attempt + :one, lease_until = :lease, "
            "updated_at = :iso, events = list_append(events, :ev) REMOVE run_after",
            # A duplicate delivery of a finished job, or one still running under a live
            # lease elsewhere, must not run it again; nor may a retry start early.
            condition="attempt < max_attempts AND ("
            "(#s = :pending) OR (#s = :retrying AND run_after <= :now_slack) OR "
            "(#s = :running AND lease_until < :now))",
            values={
                ":running": {"S": Status.RUNNING},
                ":pending": {"S": Status.PENDING},
                ":retrying": {"S": Status.RETRYING},
                ":one": {"N": "1"},
                ":lease": {"N": repr(lease_until)},
                ":now": {"N": repr(now)},
                ":now_slack": {"N": repr(now + 1.0)},
                ":iso": {"S": iso(now)},
                ":ev": {"L": [_event(Status.RUNNING, now)]},
            },
        )

    def complete(self, job_id: str, attempt: int, result_json: str) -> Job:
        now = self.clock()
        return self._finish_attempt(
            job_id,
            attempt,
            "complete",
            Status.COMPLETED,
            now,
            extra_set="#r = :result, expires_at = :ttl",
            extra_remove=", #e",
            values={
                ":result": {"S": result_json},
                ":ttl": {"N": str(expires_at(now, self.retention_days))},
            },
        )

    def retry(self, job_id: str, attempt: int, error: str, delay_s: int) -> Job:
        now = self.clock()
        return self._finish_attempt(
            job_id,
            attempt,
            "retry",
            Status.RETRYING,
            now,
            extra_set="#e = :err, run_after = :after",
            values={":err": {"S": _clip(error)}, ":after": {"N": repr(now + delay_s)}},
            event=_event(Status.RETRYING, now, error=error, delay_s=delay_s),
        )

    def fail(self, job_id: str, attempt: int, error: str) -> Job:
        now = self.clock()
        return self._finish_attempt(
            job_id,
            attempt,
            "fail",
            Status.FAILED,
            now,
            extra_set="#e = :err, expires_at = :ttl",
            values={
                ":err": {"S": _clip(error)},
                ":ttl": {"N": str(expires_at(now, self.retention_days))},
            },
            event=_event(Status.FAILED, now, error=error),
        )

    def fail_abandoned(self, job_id: str, attempt: int) -> Job:
        """running with a lapsed lease and no attempts left -> failed (its worker died)."""
        now = self.clock()
        error = "the last attempt's worker stopped before finishing (lease expired)"
        return self._transition(
            job_id,
            "fail",
            update="SET #s = :failed, #e = :err, expires_at = :ttl, updated_at = :iso, "
            "events = list_append(events, :ev) REMOVE lease_until",
            # Only the attempt we saw abandoned: a newer claim owns the job otherwise.
            condition="#s = :running AND attempt = :attempt AND attempt >= max_attempts "
            "AND lease_until < :now",
            values={
                ":failed": {"S": Status.FAILED},
                ":running": {"S": Status.RUNNING},
                ":attempt": {"N": str(attempt)},
                ":now": {"N": repr(now)},
                ":err": {"S": error},
                ":ttl": {"N": str(expires_at(now, self.retention_days))},
                ":iso": {"S": iso(now)},
                ":ev": {"L": [_event(Status.FAILED, now, error=error)]},
            },
        )

    def cancel(self, job_id: str, tenant: str | None = None) -> Job:
        now = self.clock()
        return self._transition(
            job_id,
            "cancel",
            tenant=tenant,
            update="SET #s = :cancelled, expires_at = :ttl, updated_at = :iso, "
            "events = list_append(events, :ev) REMOVE run_after",
            # A worker may claim the job at this instant: only one of the two wins.
            condition="#s IN (:pending, :retrying)",
            values={
                ":cancelled": {"S": Status.CANCELLED},
                ":pending": {"S": Status.PENDING},
                ":retrying": {"S": Status.RETRYING},
                ":ttl": {"N": str(expires_at(now, self.retention_days))},
                ":iso": {"S": iso(now)},
                ":ev": {"L": [_event(Status.CANCELLED, now)]},
            },
        )

    def redrive(
        self,
        job_id: str,
        *,
        reset_attempts: bool = True,
        actor: str = "operator",
        tenant: str | None = None,
    ) -> Job:
        """failed -> pending. By default with a fresh attempt budget; when keeping the
        count, an exhausted budget grows by one so the job can run at all."""
        now = self.clock()
        values: Item = {
            ":pending": {"S": Status.PENDING},
            ":failed": {"S": Status.FAILED},
            ":iso": {"S": iso(now)},
            ":ev": {"L": [_event("redriven", now, detail=actor, reset=reset_attempts)]},
        }
        if reset_attempts:
            budget = ", attempt = :zero"
            # Two operators redriving at once: only one resets the job.
            condition = "#s = :failed"
            values[":zero"] = {"N": "0"}
        else:
            seen = self.get(job_id, tenant)
            budget = ", max_attempts = :max"
            # The budget is computed from the attempt count read just before.
            condition = "#s = :failed AND attempt = :seen"
            values[":seen"] = {"N": str(seen.attempt)}
            values[":max"] = {"N": str(max(seen.max_attempts, seen.attempt + 1))}
        return self._transition(
            job_id,
            "redrive",
            tenant=tenant,
            update="SET #s = :pending, updated_at = :iso, events = list_append(events, :ev)"
            f"{budget} REMOVE expires_at, lease_until, run_after",
            condition=condition,
            values=values,
        )

    def record_event(self, job_id: str, kind: str, detail: str) -> Job:
        """Append an audit note (e.g. "its DLQ message was purged") to the history; the
        status and everything else stay as they are."""
        now = self.clock()
        return self._transition(
            job_id,
            kind,
            update="SET events = list_append(events, :ev)",
            condition="attribute_exists(events)",
            values={":ev": {"L": [_event(kind, now, detail=detail)]}},
        )

    def mark_requeued(self, job: Job, reason: str) -> Job:
        """Record that the sweeper re-sent the job's message; no status change.

        Conditional on the version the sweeper read, so two sweepers running at once
        re-send a job once, and a job that moved on meanwhile is left alone.
        """
        now = self.clock()
        return self._transition(
            job.id,
            "requeue",
            update="SET updated_at = :iso, events = list_append(events, :ev)",
            condition="#s = :seen_status AND updated_at = :seen_at",
            values={
                ":seen_status": {"S": job.status},
                ":seen_at": {"S": job.updated_at.strftime(TIME_FORMAT)},
                ":iso": {"S": iso(now)},
                ":ev": {"L": [_event("requeued", now, detail=reason)]},
            },
        )

    # --- operator reads (the CLI's stats and DLQ listing) ---------------------------

    def count_by_status(self, status: Status) -> int:
        """Unexpired jobs in `status`, by a COUNT Query on the status index (never a Scan).

        Select=COUNT returns no items, but DynamoDB still pages every 1 MB read, so the
        pages are summed; Count is taken after the filter, so expired leftovers that TTL
        has not removed yet are not counted (as reads treat them as gone).
        """
        args: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_status",
            "KeyConditionExpression": "#s = :s",
            "FilterExpression": "attribute_not_exists(expires_at) OR expires_at > :now",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":s": {"S": str(status)},
                ":now": {"N": str(int(self.clock()))},
            },
            "Select": "COUNT",
        }
        total = 0
        while True:
            page = self._call_raw("query", args)
            total += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return total
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def find_many(self, job_ids: Iterable[str]) -> dict[str, Job]:
        """The unexpired jobs among `job_ids`, by id; missing ones are simply absent.

        One BatchGetItem per 100 ids instead of a GetItem each: listing a DLQ of a few
        hundred messages stays a handful of calls. Reads are consistent, like find's,
        so a job failed a moment ago is seen as failed. Keys DynamoDB leaves
        unprocessed (throttling) are asked again, with a short pause, a few times.
        """
        wanted = list(dict.fromkeys(job_ids))
        found: dict[str, Job] = {}
        now = self.clock()
        for start in range(0, len(wanted), BATCH_GET_MAX):
            keys = [_key(job_id) for job_id in wanted[start : start + BATCH_GET_MAX]]
            request: Item = {self.table: {"Keys": keys, "ConsistentRead": True}}
            for attempt in range(BATCH_GET_TRIES):
                response = self._call_raw("batch_get_item", {"RequestItems": request})
                for item in response.get("Responses", {}).get(self.table, []):
                    if not is_expired(_num(item, "expires_at"), now):
                        job = to_job(item)
                        found[job.id] = job
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise BackendError("DynamoDB batch_get_item left keys unprocessed; retry later")
        return found

    # --- plumbing ------------------------------------------------------------------

    def _finish_attempt(
        self,
        job_id: str,
        attempt: int,
        name: str,
        status: Status,
        now: float,
        *,
        extra_set: str,
        values: Item,
        extra_remove: str = "",
        event: Item | None = None,
    ) -> Job:
        return self._transition(
            job_id,
            name,
            update=f"SET #s = :to, updated_at = :iso, events = list_append(events, :ev), "
            f"{extra_set} REMOVE lease_until{extra_remove}",
            # The fencing token: a worker whose lease lapsed and whose job was claimed
            # again (attempt moved on) must not overwrite the newer attempt's outcome.
            condition="#s = :running AND attempt = :attempt",
            values={
                ":to": {"S": status},
                ":running": {"S": Status.RUNNING},
                ":attempt": {"N": str(attempt)},
                ":iso": {"S": iso(now)},
                ":ev": {"L": [event or _event(status, now)]},
                **values,
            },
        )

    def _transition(
        self,
        job_id: str,
        name: str,
        *,
        update: str,
        condition: str,
        values: Item,
        tenant: str | None = None,
    ) -> Job:
        if update.startswith("SET "):
            # A token per write, so a retried call can tell the item its first try wrote.
            update = "SET write_id = :write, " + update[len("SET ") :]
            values = {**values, ":write": {"S": uuid.uuid4().hex}}
        if tenant is not None:
            # Part of the condition, so no read-then-write gap lets a caller touch
            # another tenant's job; a mismatch reads as "not found", like a read would.
            condition = f"tenant = :tenant AND ({condition})"
            values = {**values, ":tenant": {"S": tenant}}
        # status, error and result are DynamoDB reserved words; DynamoDB refuses unused names.
        names = {
            alias: name
            for alias, name in (("#s", "status"), ("#e", "error"), ("#r", "result"))
            if alias in update or alias in condition
        }
        try:
            response = self._call(
                "update_item",
                Key=_key(job_id),
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(id) AND ({condition})",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ConditionFailed as failed:
            current = failed.item
            if (
                current is None
                or is_expired(_num(current, "expires_at"), self.clock())
                or (tenant is not None and current.get("tenant", {}).get("S") != tenant)
            ):
                raise JobNotFound(f"job {job_id} not found") from None
            if ":write" in values and current.get("write_id") == values[":write"]:
                # Our own write: applied, but its response was lost and botocore's retry met it.
                return to_job(current)
            raise InvalidTransition(job_id, name, current["status"]["S"]) from None
        return to_job(response["Attributes"])

    def _raw(self, job_id: str) -> Item | None:
        item: Item | None = self._call("get_item", Key=_key(job_id), ConsistentRead=True).get(
            "Item"
        )
        return item

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return self._call_raw(operation, {"TableName": self.table, **kwargs})

    def _call_raw(self, operation: str, kwargs: dict[str, Any]) -> Any:
        return call(self.db, "DynamoDB", operation, kwargs)


# --- marshalling -----------------------------------------------------------------


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


def _new_item(new: NewJob, now: float) -> Item:
    item: Item = {
        "id": {"S": new.job_id},
        "task": {"S": new.task},
        "payload": {"S": new.payload_json},
        "status": {"S": Status.PENDING},
        "attempt": {"N": "0"},
        "max_attempts": {"N": str(new.max_attempts)},
        "created_at": {"S": iso(now)},
        "updated_at": {"S": iso(now)},
        "tenant": {"S": new.tenant},
        # The indexes' sort key: a tenant's jobs form one key range, in time order.
        "tenant_created": {"S": f"{new.tenant}#{iso(now)}"},
        "events": {"L": [_event(Status.PENDING, now)]},
    }
    if new.idempotency_key:
        item["idempotency_key"] = {"S": new.idempotency_key}
    if new.request_hash:
        item["request_hash"] = {"S": new.request_hash}
    return item


def _key(job_id: str) -> Item:
    return {"id": {"S": job_id}}


def _num(item: Mapping[str, Any], name: str) -> float | None:
    value = item.get(name)
    return float(value["N"]) if value else None


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


def _event(
    kind: str,
    now: float,
    *,
    error: str | None = None,
    delay_s: int | None = None,
    detail: str | None = None,
    reset: bool = False,
) -> Item:
    """An event as stored. Its attempt number is derived on read (see to_job)."""
    entry: Item = {"kind": {"S": str(kind)}, "at": {"S": iso(now)}}
    if error is not None:
        entry["error"] = {"S": _clip(error)}
    if delay_s is not None:
        entry["delay_s"] = {"N": str(delay_s)}
    if detail is not None:
        entry["detail"] = {"S": detail[:200]}
    if reset:
        entry["reset"] = {"BOOL": True}
    return {"M": entry}


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


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
                at=_parse_time(entry["at"]["S"]),
                error=entry.get("error", {}).get("S"),
                delay_s=int(entry["delay_s"]["N"]) if "delay_s" in entry else None,
                detail=entry.get("detail", {}).get("S"),
            )
        )
    return tuple(events)


def to_job(item: Mapping[str, Any]) -> Job:
    def s(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value else None

    result = s("result")
    expires = _num(item, "expires_at")
    return Job(
        id=item["id"]["S"],
        task=item["task"]["S"],
        payload=json.loads(item["payload"]["S"]),
        status=Status(item["status"]["S"]),
        attempt=int(item["attempt"]["N"]),
        max_attempts=int(item["max_attempts"]["N"]),
        created_at=_parse_time(item["created_at"]["S"]),
        tenant=s("tenant") or DEFAULT_TENANT,
        updated_at=_parse_time(item["updated_at"]["S"]),
        result=json.loads(result) if result is not None else None,
        error=s("error"),
        lease_until=_num(item, "lease_until"),
        run_after=_num(item, "run_after"),
        expires_at=int(expires) if expires is not None else None,
        idempotency_key=s("idempotency_key"),
        request_hash=s("request_hash"),
        events=to_events(item.get("events", {}).get("L", [])),
    )


# --- cursors -----------------------------------------------------------------------


def encode_cursor(index: str, last_key: Mapping[str, Any]) -> str:
    plain = {name: value["S"] for name, value in last_key.items()}
    raw = json.dumps({"i": index, "k": plain}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, index: str, key_attr: str, tenant: str | None = None) -> Item:
    """Accept only a cursor this store could have made for this very query."""
    invalid = InvalidRequest("invalid cursor: pass back next_cursor unchanged", field="cursor")
    if len(cursor) > 1024:
        raise invalid
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    expected = {"id", "tenant_created", key_attr}
    keys = data.get("k") if isinstance(data, dict) else None
    if (
        not isinstance(keys, dict)
        or data.get("i") != index
        or set(keys) != expected
        or not all(isinstance(v, str) and 0 < len(v) <= 256 for v in keys.values())
        or (tenant is not None and not keys["tenant_created"].startswith(f"{tenant}#"))
    ):
        raise invalid
    return {name: {"S": value} for name, value in keys.items()}
