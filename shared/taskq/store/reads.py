"""Reads of the jobs table: one job, many jobs by id, listings, the sweeper's work list,
counts. Every listing is a Query on an index, never a Scan; expired items (TTL deletes
lazily) read as gone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from taskq.aws import call
from taskq.backoff import is_expired
from taskq.errors import InvalidRequest, JobNotFound
from taskq.models import Job, Priority, Status
from taskq.store.batches import batch_get
from taskq.store.codec import (
    WAKE_BY_CLOCK,
    WAKE_BY_MESSAGE,
    Item,
    decode_cursor,
    encode_cursor,
    key,
    number,
    to_job,
)
from taskq.text import stored_time

LIST_LIMIT_MAX = 100


def get_request(table: str, job_id: str) -> dict[str, Any]:
    """A consistent GetItem: a job failed a moment ago is seen as failed."""
    return {"TableName": table, "Key": key(job_id), "ConsistentRead": True}


def visible(item: Item | None, now: float, tenant: str | None = None) -> Job | None:
    """The job an item holds, or None if missing, expired, or another tenant's."""
    if item is None or is_expired(number(item, "expires_at"), now):
        return None
    job = to_job(item)
    return job if tenant is None or job.tenant == tenant else None


class JobReader:
    """The read side of the store; `JobStore` adds the transitions."""

    def __init__(
        self, table_name: str, dynamodb: Any, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.table = table_name
        self.db = dynamodb
        self.clock = clock

    def find(self, job_id: str, tenant: str | None = None) -> Job | None:
        """The job, or None if missing, expired, or (with `tenant`) another tenant's."""
        item = self._send("get_item", get_request(self.table, job_id)).get("Item")
        return visible(item, self.clock(), tenant)

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
        priority: Priority | None = None,
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
        values: Item = {":k": {"S": key_value}}
        key_condition = "#k = :k"
        if tenant is not None:
            key_condition += " AND begins_with(tenant_created, :tenant)"
            values[":tenant"] = {"S": f"{tenant}#"}
        if not status:
            return self._list_by_task(
                str(task), tenant, priority, limit, cursor, values, key_condition
            )
        values[":now"] = {"N": str(int(self.clock()))}
        filters = ["(attribute_not_exists(expires_at) OR expires_at > :now)"]
        if task:
            names["#t"] = "task"
            values[":t"] = {"S": task}
            filters.append("#t = :t")
        if priority is not None:
            # A filter, not a key: priorities are few and listings by one are rare. The
            # default is not stored (items stay small), so it reads as "no priority".
            names["#p"] = "priority"
            if priority == Priority.DEFAULT:
                filters.append("attribute_not_exists(#p)")
            else:
                values[":p"] = {"S": priority}
                filters.append("#p = :p")
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
        page = self._send("query", args)
        jobs = [to_job(item) for item in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        return jobs, encode_cursor(index, last) if last else None

    def _list_by_task(
        self,
        task: str,
        tenant: str | None,
        priority: Priority | None,
        limit: int,
        cursor: str | None,
        values: Item,
        key_condition: str,
    ) -> tuple[list[Job], str | None]:
        """The task index holds keys only (writes after the create never touch it), so a
        page is a Query for ids, then one BatchGetItem; expired jobs and other priorities
        are left out after the read, so a page may hold fewer than `limit` (as a filtered
        Query's does) and the cursor goes on from the last id read."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_task",
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": {"#k": "task"},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": max(1, min(limit, LIST_LIMIT_MAX)),
        }
        if cursor:
            args["ExclusiveStartKey"] = decode_cursor(cursor, "by_task", "task", tenant)
        page = self._send("query", args)
        ids = [item["id"]["S"] for item in page.get("Items", [])]
        found = self.find_many(ids)
        jobs = [
            found[job_id]
            for job_id in ids
            if job_id in found and (priority is None or found[job_id].priority == priority)
        ]
        last = page.get("LastEvaluatedKey")
        return jobs, encode_cursor("by_task", last) if last else None

    def stalled(self, status: Status, before: float, limit: int = 100) -> list[Job]:
        """Jobs of `status` whose clock ran out before `before`: the sweeper's work list.

        pending: not touched since (never claimed); running: lease lapsed; retrying:
        overdue; scheduled: overdue though its message was sent. Each is a Query on an
        index (status, or wake for scheduled jobs), never a Scan.
        """
        # updated_at too: a job the sweeper re-sent waits a full window before the next.
        recent = "updated_at < :before_iso"
        before_iso = {":before_iso": {"S": stored_time(before)}}
        if status == Status.SCHEDULED:
            # Only those whose message was sent: the wake index holds them by due time, so
            # months of future jobs are not read to find the few overdue.
            args = self._wake_query(
                WAKE_BY_MESSAGE, "wake_at < :before", {":before": {"N": repr(before)}, **before_iso}
            )
            args["FilterExpression"] = recent
        else:
            field, value = {
                Status.PENDING: ("updated_at", {"S": stored_time(before)}),
                Status.RUNNING: ("lease_until", {"N": repr(before)}),
                Status.RETRYING: ("run_after", {"N": repr(before)}),
            }[status]
            args = {
                "TableName": self.table,
                "IndexName": "by_status",
                "KeyConditionExpression": "#s = :s",
                "FilterExpression": f"#f < :before AND {recent}",
                "ExpressionAttributeNames": {"#s": "status", "#f": field},
                "ExpressionAttributeValues": {":s": {"S": status}, ":before": value, **before_iso},
            }
        jobs: list[Job] = []
        for page in self._pages(args):
            jobs.extend(to_job(item) for item in page.get("Items", []))
            if len(jobs) >= limit:
                break
        return jobs[:limit]

    def due(self, until: float, limit: int = 100) -> list[Job]:
        """Scheduled jobs the clock wakes (delayed past SQS's 15 minutes) due by `until`,
        soonest first: one Query on the sparse wake index, which holds nothing else."""
        args = self._wake_query(WAKE_BY_CLOCK, "wake_at <= :until", {":until": {"N": repr(until)}})
        args["Limit"] = max(1, min(limit, 1000))
        return [to_job(item) for item in self._send("query", args).get("Items", [])]

    def _wake_query(self, wake: str, condition: str, values: Item) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "IndexName": "by_wake",
            "KeyConditionExpression": f"wake = :wake AND {condition}",
            "ExpressionAttributeValues": {":wake": {"S": wake}, **values},
        }

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
        return sum(int(page.get("Count", 0)) for page in self._pages(args))

    def touched_since(
        self, status: Status, since: float, max_pages: int = 10
    ) -> tuple[list[tuple[str, str]], bool]:
        """(created_at, updated_at) of the jobs in `status` changed since `since`, and
        whether every page was read: a Query on the status index (never a Scan) that
        returns only the two times, at most `max_pages` pages of 1 MB each.

        The filter is applied after the read, so a long history in one status costs up to
        the page cap; the dashboard's chart says when it was reached.
        """
        args: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_status",
            "KeyConditionExpression": "#s = :s",
            "FilterExpression": "updated_at >= :since",
            "ProjectionExpression": "created_at, updated_at",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":s": {"S": str(status)},
                ":since": {"S": stored_time(since)},
            },
            "ScanIndexForward": False,
        }
        found: list[tuple[str, str]] = []
        for number_read, page in enumerate(self._pages(args), start=1):
            found += [(i["created_at"]["S"], i["updated_at"]["S"]) for i in page.get("Items", [])]
            if number_read >= max_pages and "LastEvaluatedKey" in page:
                return found, False
        return found, True

    def find_many(self, job_ids: Iterable[str]) -> dict[str, Job]:
        """The unexpired jobs among `job_ids`, by id; missing ones are simply absent.

        One BatchGetItem per 100 ids instead of a GetItem each: listing a DLQ of a few
        hundred messages stays a handful of calls. Reads are consistent, like find's.
        """
        wanted = [key(job_id) for job_id in dict.fromkeys(job_ids)]
        now = self.clock()
        jobs = (visible(item, now) for item in batch_get(self._send, self.table, wanted))
        return {job.id: job for job in jobs if job is not None}

    def _pages(self, args: dict[str, Any]) -> Iterable[Any]:
        """Every page of a Query, following LastEvaluatedKey."""
        while True:
            page = self._send("query", args)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            args = {**args, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _send(self, operation: str, kwargs: dict[str, Any]) -> Any:
        return call(self.db, "DynamoDB", operation, kwargs)
