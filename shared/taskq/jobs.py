"""The operations clients and operators call: submit, read, list, cancel, redrive.

The API and the CLI call these; only store.py changes a job's status.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskq import metrics
from taskq.errors import (
    BackendError,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    PayloadTooLarge,
    TaskqError,
)
from taskq.log import logger
from taskq.models import DEFAULT_TENANT, Job, JobRequest, LogLine, Priority, Status
from taskq.queue import SQS_DELAY_MAX_S, JobQueue, Outgoing
from taskq.scheduling.delays import message_delay, wakes_by_clock
from taskq.store import JobStore, NewJob
from taskq.store.lines import LogLines
from taskq.tasks import TaskRegistry

# DynamoDB items are at most 400 KB; the payload may take 256 KiB (the SQS message
# limit users know) and the rest is left for the result, history and attributes.
PAYLOAD_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class Submitted:
    job: Job
    replayed: bool  # an earlier request with the same idempotency key made this job


class JobService:
    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        registry: TaskRegistry,
        *,
        default_max_attempts: int = 3,
        direct_delay_max_s: int = SQS_DELAY_MAX_S,
        lines: LogLines | None = None,
    ) -> None:
        self.store = store
        self.lines = lines  # ctx.log's lines; None: the deployment keeps none
        self.queue = queue
        self.registry = registry
        self.default_max_attempts = default_max_attempts
        # Delays up to this ride on the SQS message; longer ones wait in the due index.
        self.direct_delay_max_s = direct_delay_max_s

    def submit(
        self,
        request: JobRequest,
        idempotency_key: str | None = None,
        tenant: str = DEFAULT_TENANT,
        *,
        schedule: str | None = None,
    ) -> Submitted:
        """Validate, store (pending or scheduled), then enqueue (a delayed job's message
        waits in SQS, or in the due index). A failed send is recovered by the sweeper."""
        submitted = self._store_one(self._prepare(request, idempotency_key, tenant, schedule))
        if not submitted.replayed:
            self._enqueue(submitted.job)
        return submitted

    def submit_many(
        self,
        requests: Sequence[tuple[JobRequest, str | None]],
        tenant: str = DEFAULT_TENANT,
    ) -> list[Submitted | TaskqError]:
        """Submit a batch, item by item in outcome: each gets its job or its own error.

        Jobs without an idempotency key are written with BatchWriteItem and sent with
        SendMessageBatch, which is what makes a batch cheaper than single submits.
        """
        outcomes: list[Submitted | TaskqError] = []
        fresh: list[tuple[int, NewJob]] = []
        for index, (request, key) in enumerate(requests):
            try:
                new = self._prepare(request, key, tenant)
                outcomes.append(self._store_one(new) if key else Conflict("not stored yet"))
                if not key:
                    fresh.append((index, new))
            except TaskqError as exc:
                outcomes.append(exc)
        try:
            created = self.store.create_many([new for _, new in fresh])
            metrics.jobs_submitted(len(created))
        except TaskqError as exc:
            for index, _ in fresh:
                outcomes[index] = exc
            created = []
        for (index, _), job in zip(fresh, created, strict=False):
            outcomes[index] = Submitted(job, replayed=False)
        now = self.store.clock()
        to_send = [
            Outgoing(o.job.id, o.job.task, delay, o.job.priority)
            for o in outcomes
            if isinstance(o, Submitted) and not o.replayed
            if (delay := message_delay(o.job, now)) is not None
        ]
        try:
            unsent = self.queue.send_many(to_send)
        except BackendError:
            unsent = [entry.job_id for entry in to_send]
        if unsent:
            logger.error(
                "batch enqueue incomplete; the sweeper will re-send", extra={"jobs": unsent}
            )
        return outcomes

    def _prepare(
        self,
        request: JobRequest,
        idempotency_key: str | None,
        tenant: str,
        schedule: str | None = None,
    ) -> NewJob:
        task = self.registry.get(request.task)
        parsed = task.parse(request.payload)
        try:
            payload = parsed.model_dump(mode="json")
            payload_json = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            size = len(payload_json.encode())
        except UnicodeEncodeError:  # JSON's \ud800 escapes decode to lone surrogates
            raise InvalidRequest(
                "payload: strings must be valid Unicode (a lone surrogate is not)", field="payload"
            ) from None
        if size > PAYLOAD_MAX_BYTES:
            raise PayloadTooLarge(
                f"payload is larger than {PAYLOAD_MAX_BYTES} bytes", field="payload"
            )
        max_attempts = request.max_attempts or task.policy.max_attempts or self.default_max_attempts
        now = self.store.clock()
        run_at = request.run_at_epoch(now)
        identity: dict[str, Any] = {"task": task.name, "payload": payload, "max": max_attempts}
        if request.priority is not None:  # as asked: part of an idempotent request's identity
            identity["priority"] = str(request.priority)
        return NewJob(
            job_id=new_job_id(idempotency_key, tenant),
            task=task.name,
            payload_json=payload_json,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            request_hash=_hash({**identity, **request.timing()}),
            tenant=tenant,
            run_at=run_at,
            wakes_by_clock=wakes_by_clock(run_at, now, self.direct_delay_max_s),
            schedule=schedule,
            priority=request.priority or task.priority,
        )

    def _store_one(self, new: NewJob) -> Submitted:
        job, created = self.store.create(new)
        if created:
            metrics.jobs_submitted()
            return Submitted(job, replayed=False)
        if new.idempotency_key is None:
            raise Conflict(f"job id {new.job_id} collided; submit again")
        if job.request_hash != new.request_hash:
            raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
        return Submitted(job, replayed=True)

    def get(self, job_id: str, tenant: str | None = None) -> Job:
        return self.store.get(job_id, tenant)

    def log_page(
        self, job_id: str, tenant: str | None = None, *, after: str | None = None, limit: int = 100
    ) -> tuple[Job, list[LogLine], str | None]:
        """The job (JobNotFound for an unknown job or another tenant's) and its task's log
        lines after the cursor, oldest first, with the cursor for the next ones."""
        job = self.store.get(job_id, tenant)
        if self.lines is None:
            return job, [], after
        lines, next_cursor = self.lines.page(job_id, after, limit)
        return job, lines, next_cursor

    def find_by_key(self, idempotency_key: str, tenant: str) -> Job | None:
        """The job an idempotency key made, if it exists (its id derives from the key)."""
        return self.store.find(new_job_id(idempotency_key, tenant), tenant)

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
        return self.store.list_jobs(
            tenant=tenant, status=status, task=task, priority=priority, limit=limit, cursor=cursor
        )

    def browse(
        self,
        *,
        tenant: str | None = None,
        status: Status | None = None,
        task: str | None = None,
        priority: Priority | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """What an operator lists (`taskq jobs ls`, the dashboard's /jobs): by status or
        task, a page at a time (a Query); with neither, the newest of every status."""
        if status is None and not task:
            if cursor:
                raise InvalidRequest(
                    "a cursor continues a listing by status or task", field="cursor"
                )
            return self.list_newest(tenant=tenant, priority=priority, limit=limit), None
        return self.list_jobs(
            tenant=tenant, status=status, task=task, priority=priority, limit=limit, cursor=cursor
        )

    def find(self, job_id: str, tenant: str | None = None) -> Job | None:
        """The job, or None when there is none (for callers to whom absence is no error)."""
        return self.store.find(job_id, tenant)

    def list_newest(
        self, *, tenant: str | None = None, priority: Priority | None = None, limit: int = 50
    ) -> list[Job]:
        """The newest jobs in any status: the indexes are per status or task, so this is
        one Query per status, merged (still never a Scan); it cannot continue by cursor."""
        found: list[Job] = []
        for status in Status:
            found += self.store.list_jobs(
                tenant=tenant, status=status, priority=priority, limit=limit
            )[0]
        return sorted(found, key=lambda job: job.created_at, reverse=True)[:limit]

    def record_event(self, job_id: str, kind: str, detail: str) -> Job:
        """Note something done around a job (e.g. its DLQ message purged) in its history;
        its status stays as it is."""
        return self.store.record_event(job_id, kind, detail)

    def cancel(self, job_id: str, tenant: str | None = None, *, actor: str | None = None) -> Job:
        """scheduled/pending/retrying -> cancelled; its message, when received (a scheduled
        job's wake-up too), is acknowledged unrun. An operator's cancel names them (`actor`)
        in the job's history, as a redrive does."""
        return self.store.cancel(job_id, tenant, actor=actor)

    def redrive(
        self,
        job_id: str,
        *,
        reset_attempts: bool = True,
        actor: str = "api",
        tenant: str | None = None,
    ) -> Job:
        """failed -> pending, then enqueue: the job is safely queued before anyone deletes
        its DLQ message (a crash in between leaves it pending, for the sweeper)."""
        job = self.store.redrive(job_id, reset_attempts=reset_attempts, actor=actor, tenant=tenant)
        self._enqueue(job)
        return job

    def _enqueue(self, job: Job) -> None:
        delay = message_delay(job, self.store.clock())
        if delay is None:  # in the due index: the clock sends its message when it is due
            return
        try:
            self.queue.send(job.id, job.task, delay, job.priority)
        except BackendError:
            # The job is stored: the sweeper re-sends jobs left pending this long.
            logger.exception("enqueue failed; the sweeper will re-send", extra={"job_id": job.id})


def new_job_id(idempotency_key: str | None, tenant: str) -> str:
    """Random, or derived from the tenant's idempotency key so a retried submit finds its job.

    The tenant is part of the derivation: two tenants using one key get two jobs.
    """
    if idempotency_key is None:
        return uuid.uuid4().hex
    return hashlib.sha256(f"idempotency:{tenant}:{idempotency_key}".encode()).hexdigest()[:32]


def _hash(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
