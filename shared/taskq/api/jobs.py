"""/jobs: submit (one or a batch), read, list, history, cancel, retry. Each route checks
its input and calls JobService; errors become problem+json in taskq.problems."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from taskq import problems
from taskq.api.deps import PROBLEM, JobIdParam, ServicesDep, TenantDep
from taskq.errors import InvalidRequest
from taskq.jobs import Submitted
from taskq.models import (
    IDEMPOTENCY_KEY_RULE,
    TASK_NAME_PATTERN,
    BatchItemResult,
    BatchOut,
    BatchRequest,
    EventsOut,
    JobOut,
    JobPage,
    JobRequest,
    Status,
    is_idempotency_key,
)

router = APIRouter(prefix="/jobs")

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="same key + same body returns the same job; a different body: 409",
    ),
]


@router.post(
    "", status_code=202, response_model=JobOut, responses={409: PROBLEM, 413: PROBLEM, 503: PROBLEM}
)
def submit_job(
    request: JobRequest,
    response: Response,
    svc: ServicesDep,
    tenant: TenantDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobOut:
    if idempotency_key is not None and not is_idempotency_key(idempotency_key):
        raise InvalidRequest(
            f"Idempotency-Key must be {IDEMPOTENCY_KEY_RULE}", field="Idempotency-Key"
        )
    submitted = svc.jobs.submit(request, idempotency_key, tenant)
    response.headers["Location"] = f"/jobs/{submitted.job.id}"
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.of(submitted.job)


@router.post(":batch", status_code=202, response_model=BatchOut, responses={413: PROBLEM})
def submit_batch(
    batch: BatchRequest, response: Response, svc: ServicesDep, tenant: TenantDep
) -> BatchOut:
    """Up to 100 jobs in one request; each item succeeds or fails on its own.

    202 when at least one job was accepted, 422 when none was; per-item outcomes
    carry the status and problem each would have got alone.
    """
    outcomes = svc.jobs.submit_many(
        [(JobRequest(task=i.task, payload=i.payload, max_attempts=i.max_attempts),
          i.idempotency_key) for i in batch.jobs],
        tenant,
    )  # fmt: skip
    items = [
        BatchItemResult(index=n, status=202, job=JobOut.of(o.job))
        if isinstance(o, Submitted)
        else BatchItemResult(index=n, status=(p := problems.describe(o))["status"], problem=p)
        for n, o in enumerate(outcomes)
    ]
    accepted = sum(item.status == 202 for item in items)
    if not accepted:
        response.status_code = 422
    return BatchOut(accepted=accepted, rejected=len(items) - accepted, items=items)


@router.get("", response_model=JobPage)
def list_jobs(
    svc: ServicesDep,
    tenant: TenantDep,
    status: Status | None = None,
    task: Annotated[str | None, Query(pattern=TASK_NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> JobPage:
    """Newest first. Filter by status, task, or both (at least one)."""
    jobs, next_cursor = svc.jobs.list_jobs(
        tenant=tenant, status=status, task=task, limit=limit, cursor=cursor
    )
    return JobPage(items=[JobOut.of(j) for j in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses={404: PROBLEM})
def get_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
    return JobOut.of(svc.jobs.get(job_id, tenant))


@router.get("/{job_id}/events", response_model=EventsOut, responses={404: PROBLEM})
def job_events(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> EventsOut:
    return EventsOut(job_id=job_id, events=list(svc.jobs.get(job_id, tenant).events))


@router.post("/{job_id}/cancel", response_model=JobOut, responses={404: PROBLEM, 409: PROBLEM})
def cancel_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
    """Only a pending or retrying job can be cancelled; a running one answers 409."""
    return JobOut.of(svc.jobs.cancel(job_id, tenant))


@router.post("/{job_id}/retry", response_model=JobOut, responses={404: PROBLEM, 409: PROBLEM})
def retry_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
    """Run a failed job again with a fresh attempt budget (its DLQ message becomes stale)."""
    return JobOut.of(svc.jobs.redrive(job_id, actor=f"api:{tenant}", tenant=tenant))
