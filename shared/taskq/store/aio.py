"""The job store over an async client, for the worker: it sends the very requests that
`transitions` defines (no second copy of a condition) and reads one job."""

from __future__ import annotations

import time
from collections.abc import Callable

from taskq.aio import AsyncCaller, ThreadedClient
from taskq.aws import ConditionFailed
from taskq.models import Job
from taskq.store.jobstore import JobStore
from taskq.store.reads import get_request, visible
from taskq.store.transitions import Transitions, Write


class AsyncJobStore:
    """`await store.apply(store.transitions.claim(...))`: build a transition, send it."""

    def __init__(
        self,
        table_name: str,
        dynamodb: AsyncCaller,
        *,
        retention_days: int = 14,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table_name
        self.db = dynamodb
        self.clock = clock
        self.transitions = Transitions(table_name, retention_days)

    @classmethod
    def beside(cls, store: JobStore) -> AsyncJobStore:
        """The same table, clock and retention as a sync store, its client run in threads."""
        return cls(
            store.table,
            ThreadedClient("DynamoDB", store.db),
            retention_days=store.retention_days,
            clock=store.clock,
        )

    async def apply(self, write: Write) -> Job:
        """Send one transition; its refusal raises JobNotFound or InvalidTransition."""
        try:
            response = await self.db.call("update_item", write.request)
        except ConditionFailed as failed:
            return write.refused(failed.item, self.clock())
        return write.accepted(response)

    async def touch(self, write: Write) -> None:
        """Send a write that changes no status (a heartbeat): only its refusal matters."""
        try:
            await self.db.call("update_item", write.request)
        except ConditionFailed as failed:
            write.refused(failed.item, self.clock())

    async def find(self, job_id: str) -> Job | None:
        """The job, or None if missing or expired (a consistent read)."""
        response = await self.db.call("get_item", get_request(self.table, job_id))
        return visible(response.get("Item"), self.clock())
