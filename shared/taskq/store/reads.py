"""Reads of the jobs table: one job, many jobs by id, listings, the sweeper's work list,
counts, the per-minute activity. Every listing is a Query on an index, never a Scan;
expired items (TTL deletes lazily) read as gone.

The listing indexes hold keys, not items (see codec's PHASE_LIVE), so the writes every
job makes stay few: a listing reads its page's items by key instead, a cost moved from
every job to the rare reader."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any

from taskq.aws import call
from taskq.backoff import is_expired
from taskq.errors import InvalidRequest, JobNotFound
from taskq.models import TERMINAL, Job, Priority, Status
from taskq.store.batches import batch_get
from taskq.store.codec import (
    PHASE_LIVE,
    PHASE_WAITING,
    WAKE_BY_CLOCK,
    WAKE_BY_MESSAGE,
    Item,
    decode_cursor,
    encode_cursor,
    key,
    number,
    to_job,
)
from taskq.text import parse_stored_time, stored_time

LIST_LIMIT_MAX = 100
LIST_PAGES_MAX = 5  # index pages one listing call reads to fill its page
# Live jobs an overview's counts read, at most: 1,000 read units (eventually consistent) a
# count, which the dashboard makes every 5 s while its tab is visible.
LIVE_COUNT_MAX = 2_000

# Where each status's jobs are in the phase index (codec's PHASE_LIVE): the phases a
# listing by that status reads, in this order.
PHASES_OF: dict[Status, tuple[str, ...]] = {
    Status.SCHEDULED: (PHASE_WAITING, PHASE_LIVE),
    Status.PENDING: (PHASE_LIVE,),
    Status.RUNNING: (PHASE_LIVE,),
    Status.RETRYING: (PHASE_LIVE,),
    Status.COMPLETED: (Status.COMPLETED,),
    Status.FAILED: (Status.FAILED,),
    Status.CANCELLED: (Status.CANCELLED,),
}
FINISHED_PHASES = tuple(str(status) for status in TERMINAL)
PHASES = (PHASE_LIVE, PHASE_WAITING, *FINISHED_PHASES)


def sort_key(entry: Item) -> tuple[str, float]:
    """The tenant and creation time an index entry's sort key ("tenant#created_at") holds."""
    tenant, created = entry["tenant_created"]["S"].rsplit("#", 1)
    return tenant, parse_stored_time(created).timestamp()


def created_at(entry: Item) -> float:
    return sort_key(entry)[1]


def is_stalled(job: Job, before: float) -> bool:
    """Whether a live job's clock ran out before `before` (the sweeper re-sends it)."""
    clock = {
        Status.PENDING: job.updated_at.timestamp(),
        Status.RUNNING: job.lease_until,
        Status.RETRYING: job.run_after,
    }.get(job.status)
    return clock is not None and clock < before and job.updated_at.timestamp() < before


@dataclass
class Activity:
    """Creation times of the jobs created since some moment, and finish times (by
    outcome) of the jobs finished since then: what the per-minute chart counts."""

    created: list[float] = field(default_factory=list)
    finished: dict[str, list[float]] = field(default_factory=dict)

    def add(self, phase: str, entries: list[Item], since: float) -> None:
        for entry in entries:
            created = created_at(entry)
            if created >= since:
                self.created.append(created)
            finished = number(entry, "finished_at")
            if finished is not None and finished >= since:
                self.finished.setdefault(phase, []).append(finished)


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
        """Newest first, by a Query on the phase or task index (never a Scan).

        Both indexes hold keys (and a few attributes), so a page is a Query for ids, then
        one BatchGetItem; what the filters leave out is dropped after the read, and more
        pages are read (at most LIST_PAGES_MAX) to fill `limit`. A page may still hold
        fewer, with a cursor to go on. The indexes sort on "tenant#created_at", so one
        tenant's jobs are a key range: a tenant's listing cannot reach another's. Without
        a tenant (operators), jobs come grouped by tenant, newest first within each.
        """
        if status is None and not task:
            raise InvalidRequest("filter by status or task (or both)", field="status")

        def keep(job: Job) -> bool:
            return (
                (status is None or job.status == status)
                and (not task or job.task == task)
                and (priority is None or job.priority == priority)
            )

        if status is None:
            return self._list_keyed("by_task", "task", [str(task)], tenant, limit, cursor, keep)
        return self._list_keyed(
            "by_phase", "phase", list(PHASES_OF[status]), tenant, limit, cursor, keep
        )

    def _list_keyed(
        self,
        index: str,
        key_attr: str,
        partitions: list[str],
        tenant: str | None,
        limit: int,
        cursor: str | None,
        keep: Callable[[Job], bool],
    ) -> tuple[list[Job], str | None]:
        """Read `partitions` of `index` in turn, newest first, keeping what `keep` accepts."""
        limit = max(1, min(limit, LIST_LIMIT_MAX))
        at, start = 0, None
        if cursor:
            start = decode_cursor(cursor, index, key_attr, tenant, partitions)
            at = partitions.index(start[key_attr]["S"])
            start = start if len(start) > 1 else None  # the start of a later partition
        jobs: list[Job] = []
        for _ in range(LIST_PAGES_MAX):
            args = self._keys_query(index, key_attr, partitions[at], tenant)
            args["Limit"] = limit - len(jobs)
            if start:
                args["ExclusiveStartKey"] = start
            page = self._send("query", args)
            jobs += self._kept(page, keep)
            start = page.get("LastEvaluatedKey")
            if start is None:
                at += 1
                if at == len(partitions):
                    return jobs, None
            if len(jobs) >= limit:
                break
        following = start or {key_attr: {"S": partitions[at]}}
        return jobs, encode_cursor(index, following)

    def _kept(
        self, page: Any, keep: Callable[[Job], bool], *, consistent: bool = True
    ) -> list[Job]:
        """The page's jobs (read by key, in the page's order) that `keep` accepts."""
        ids = [entry["id"]["S"] for entry in page.get("Items", [])]
        found = self.find_many(ids, consistent=consistent)
        return [found[job_id] for job_id in ids if job_id in found and keep(found[job_id])]

    def _keys_query(
        self, index: str, key_attr: str, value: str, tenant: str | None = None
    ) -> dict[str, Any]:
        values: Item = {":k": {"S": value}}
        key_condition = "#k = :k"
        if tenant is not None:
            key_condition += " AND begins_with(tenant_created, :tenant)"
            values[":tenant"] = {"S": f"{tenant}#"}
        return {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": {"#k": key_attr},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }

    def stalled(self, before: float, limit: int = 100) -> list[Job]:
        """Jobs SQS should have brought whose clock ran out before `before`: the sweeper's
        work list, read from the live phase (keys, then the items by key).

        pending: not touched since (never claimed); running: lease lapsed; retrying:
        overdue. And untouched since `before` (a job the sweeper re-sent waits a full
        window before the next). Scheduled jobs are `overdue_scheduled`'s.

        Oldest first, one tenant's key range after another: no job created since `before`
        can be stalled (it was touched since), so at a tenant's first such job the rest of
        its range is skipped. A sweep reads the live jobs older than its window, not every
        live job.
        """
        jobs: list[Job] = []
        args = self._keys_query("by_phase", "phase", PHASE_LIVE)
        args["ScanIndexForward"] = True
        while len(jobs) < limit:
            page = self._send("query", args)
            entries = page.get("Items", [])
            old = list(takewhile(lambda entry: created_at(entry) < before, entries))
            jobs += self._kept({"Items": old}, lambda job: is_stalled(job, before))
            if len(old) < len(entries):
                # Past the tenant's old jobs: on from the next tenant's range ('#' < '$').
                tenant, _ = sort_key(entries[len(old)])
                args = self._keys_query("by_phase", "phase", PHASE_LIVE)
                args["KeyConditionExpression"] += " AND tenant_created >= :next"
                args["ExpressionAttributeValues"][":next"] = {"S": f"{tenant}$"}
                args["ScanIndexForward"] = True
            elif "LastEvaluatedKey" in page:
                args = {**args, "ExclusiveStartKey": page["LastEvaluatedKey"]}
            else:
                break
        return jobs[:limit]

    def overdue_scheduled(self, before: float, limit: int = 100) -> list[Job]:
        """Scheduled jobs whose wake-up message was sent but which are still unclaimed
        past `before`: the wake index holds them by due time, so months of future jobs are
        not read to find the few overdue."""
        args = self._wake_query(
            WAKE_BY_MESSAGE,
            "wake_at < :before",
            {":before": {"N": repr(before)}, ":before_iso": {"S": stored_time(before)}},
        )
        args["FilterExpression"] = "updated_at < :before_iso"
        jobs: list[Job] = []
        for page in self.query_pages(args):
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

    def count_jobs(self, max_live: int = LIVE_COUNT_MAX) -> tuple[dict[Status, int], bool]:
        """Unexpired jobs by status, and whether every live job was counted.

        A finished status and the clock's scheduled jobs are a COUNT Query on their phase
        (Count is taken after the filter, so expired leftovers TTL has not removed yet are
        not counted). The live phase holds four statuses, which only the items tell: at
        most `max_live` of them are read, so an overview under a backlog of millions stays
        cheap; past that, the counts of live statuses are lower bounds.
        """
        counts = {status: 0 for status in Status}
        for status in TERMINAL:
            counts[status] = self._count_phase(str(status))
        counts[Status.SCHEDULED] = self._count_phase(PHASE_WAITING)
        args = self._keys_query("by_phase", "phase", PHASE_LIVE)
        read = 0
        while read < max_live:
            page = self._send("query", {**args, "Limit": min(max_live - read, 1000)})
            live = self._kept(page, lambda job: job.status not in TERMINAL, consistent=False)
            for job in live:
                counts[job.status] += 1
            read += len(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return counts, True
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return counts, False

    def _count_phase(self, phase: str) -> int:
        """Select=COUNT returns no items, but DynamoDB still pages every 1 MB read."""
        args = self._keys_query("by_phase", "phase", phase)
        args["FilterExpression"] = "attribute_not_exists(expires_at) OR expires_at > :now"
        args["ExpressionAttributeValues"][":now"] = {"N": str(int(self.clock()))}
        args["Select"] = "COUNT"
        return sum(int(page.get("Count", 0)) for page in self.query_pages(args))

    def activity(self, since: float, max_pages: int = 10) -> tuple[Activity, bool]:
        """When the jobs created since `since` were created, and when those that finished
        since then finished, and whether every page was read: a Query per phase on the
        phase index, which holds both times (its sort key holds the creation), at most
        `max_pages` pages of 1 MB each. No job item is read.
        """
        found = Activity()
        whole = True
        for phase in PHASES:
            args = self._keys_query("by_phase", "phase", phase)
            args["ExpressionAttributeNames"]["#f"] = "finished_at"
            args["ProjectionExpression"] = "tenant_created, #f"
            if phase in FINISHED_PHASES:
                # A job created since then finished since then too.
                args["FilterExpression"] = "#f >= :since"
                args["ExpressionAttributeValues"][":since"] = {"N": repr(since)}
            for number_read, page in enumerate(self.query_pages(args), start=1):
                found.add(phase, page.get("Items", []), since)
                if number_read >= max_pages and "LastEvaluatedKey" in page:
                    whole = False
                    break
        return found, whole

    def find_many(self, job_ids: Iterable[str], *, consistent: bool = True) -> dict[str, Job]:
        """The unexpired jobs among `job_ids`, by id; missing ones are simply absent.

        One BatchGetItem per 100 ids instead of a GetItem each: listing a DLQ of a few
        hundred messages stays a handful of calls. Reads are consistent, like find's,
        unless asked otherwise.
        """
        wanted = [key(job_id) for job_id in dict.fromkeys(job_ids)]
        now = self.clock()
        items = batch_get(self._send, self.table, wanted, consistent=consistent)
        jobs = (visible(item, now) for item in items)
        return {job.id: job for job in jobs if job is not None}

    def query_pages(self, args: dict[str, Any]) -> Iterable[Any]:
        """Every page of a Query, following LastEvaluatedKey."""
        while True:
            page = self._send("query", args)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            args = {**args, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _send(self, operation: str, kwargs: dict[str, Any]) -> Any:
        return call(self.db, "DynamoDB", operation, kwargs)
