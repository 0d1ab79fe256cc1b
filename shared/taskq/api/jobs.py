"""/jobs: submit (one or a batch), read, list, history, cancel, retry. Each route checks
its input and calls JobService; errors become problem+json in taskq.problems.

Every rule a route enforces on its input is stated in its parameters (and so in the
OpenAPI schema), and every status it can answer is in its `responses`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import ValidationError

from taskq import problems
from taskq.api.body import JsonBodyRoute
from taskq.api.deps import CHECKED, JSON_BODY, KEYED, JobIdParam, ServicesDep, TenantDep
from taskq.errors import InvalidRequest, TaskqError
from taskq.jobs import Submitted
from taskq.models import (
    CURSOR_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_KEY_RULE,
    TASK_NAME_PATTERN,
    BatchItem,
    BatchItemResult,
    BatchOut,
    BatchRequest,
    EventsOut,
    JobOut,
    JobPage,
    JobRequest,
    LogPage,
    Priority,
    Status,
)
from taskq.problems import MEDIA_TYPE, PROBLEM, PROBLEM_REF
from taskq.store.codec import CURSOR_MAX_CHARS
from taskq.store.lines import LOG_CURSOR_MAX_DIGITS, LOG_PAGE_MAX
from taskq.text import first_validation_error

router = APIRouter(prefix="/jobs", route_class=JsonBodyRoute, responses=KEYED)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            f"{IDEMPOTENCY_KEY_RULE}: the same key and body return the same job;"
            " a different body: 409"
        ),
    ),
]
_JOB = {404: PROBLEM, **CHECKED}
_BATCH_OUT = {"application/json": {"schema": {"$ref": "#/components/schemas/BatchOut"}}}


def _batch_none_accepted(or_problem: str | None) -> dict[str, Any]:
    """A status a batch answers when no item was accepted (the batch itself, as JSON), and
    maybe also as a problem about the request as a whole (`or_problem` says when)."""
    description = "no item was accepted; this is the highest of the items' statuses"
    content: dict[str, Any] = dict(_BATCH_OUT)
    if or_problem:
        description += f"; or, as a problem, {or_problem}"
        content[MEDIA_TYPE] = {"schema": {"$ref": PROBLEM_REF}}
    return {"description": description, "content": content}


_BATCH_RESPONSES = {
    **JSON_BODY,
    409: _batch_none_accepted(None),
    413: _batch_none_accepted("the body is too large"),
    422: _batch_none_accepted("the batch itself is malformed"),
    503: _batch_none_accepted("the key could not be checked"),
}


@router.post("", status_code=202, response_model=JobOut, responses={409: PROBLEM, **JSON_BODY})
def submit_job(
    request: JobRequest,
    response: Response,
    svc: ServicesDep,
    tenant: TenantDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobOut:
    submitted = svc.jobs.submit(request, idempotency_key, tenant)
    response.headers["Location"] = f"/jobs/{submitted.job.id}"
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.of(submitted.job)


@router.post(
    ":batch",
    status_code=202,
    response_model=BatchOut,
    responses=_BATCH_RESPONSES,
)
def submit_batch(
    batch: BatchRequest, response: Response, svc: ServicesDep, tenant: TenantDep
) -> BatchOut:
    """Up to 100 jobs in one request; each item succeeds or fails on its own.

    202 when at least one job was accepted. When none was, the highest of the items'
    statuses: 422 when any item is invalid, 409 when every item conflicts, 503 when storage
    failed (retry) - so the status alone says whether sending the batch again can help.
    Per-item outcomes carry the status and problem each would have got alone.
    """
    checked = [_job_request(item) for item in batch.jobs]
    requests = [
        (request, item.idempotency_key)
        for request, item in zip(checked, batch.jobs, strict=True)
        if isinstance(request, JobRequest)
    ]
    done = iter(svc.jobs.submit_many(requests, tenant))
    outcomes: list[Submitted | TaskqError] = [
        next(done) if isinstance(c, JobRequest) else c for c in checked
    ]
    items = [
        BatchItemResult(index=n, status=202, job=JobOut.of(o.job))
        if isinstance(o, Submitted)
        else BatchItemResult(index=n, status=(p := problems.describe(o))["status"], problem=p)
        for n, o in enumerate(outcomes)
    ]
    accepted = sum(item.status == 202 for item in items)
    if not accepted:
        response.status_code = max(item.status for item in items)
        if response.status_code == 503:
            response.headers["Retry-After"] = "1"
    return BatchOut(accepted=accepted, rejected=len(items) - accepted, items=items)


def _job_request(item: BatchItem) -> JobRequest | InvalidRequest:
    """The item as a JobRequest (its payload checked as POST /jobs checks one), or the
    item's own 422: what the payload check finds is the item's problem, not the batch's."""
    try:
        fields = item.model_dump(exclude={"idempotency_key"}, exclude_unset=True)
        return JobRequest(**{**fields, "payload": item.payload, "run_at": item.run_at})
    except ValidationError as exc:
        where, message = first_validation_error(exc)
        return InvalidRequest(f"{where}: {message}", field=where)


@router.get("", response_model=JobPage, responses=CHECKED)
def list_jobs(
    svc: ServicesDep,
    tenant: TenantDep,
    status: Status | None = None,
    task: Annotated[str | None, Query(pattern=TASK_NAME_PATTERN)] = None,
    priority: Priority | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=CURSOR_MAX_CHARS,
            pattern=CURSOR_PATTERN,
            description=(
                "a previous page's next_cursor, unchanged, with the same status and task"
                " (any other value is a 422)"
            ),
        ),
    ] = None,
) -> JobPage:
    """Newest first, filtered by status, task, or both (and by priority), page by page.

    Without a filter: the newest jobs in any status, one page only (the indexes are per
    status or task, so such a listing cannot continue; next_cursor is null).
    """
    jobs, next_cursor = svc.jobs.browse(
        tenant=tenant, status=status, task=task, priority=priority, limit=limit, cursor=cursor
    )
    return JobPage(items=[JobOut.of(j) for j in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=_JOB)
def get_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
    return JobOut.of(svc.jobs.get(job_id, tenant))


@router.get("/{job_id}/events", response_model=EventsOut, responses=_JOB)
def job_events(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> EventsOut:
    return EventsOut(job_id=job_id, events=list(svc.jobs.get(job_id, tenant).events))


@router.get("/{job_id}/logs", response_model=LogPage, responses=_JOB)
def job_logs(
    job_id: JobIdParam,
    svc: ServicesDep,
    tenant: TenantDep,
    after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=LOG_CURSOR_MAX_DIGITS,
            pattern=r"^[0-9]+$",
            description="a previous page's next_cursor, unchanged: the lines after it",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=LOG_PAGE_MAX)] = 100,
) -> LogPage:
    """The lines the job's task wrote with ctx.log, oldest first, each with its attempt;
    a marker line says how many an attempt dropped over its limits. Poll with the
    returned next_cursor to follow a running job."""
    _, lines, next_cursor = svc.jobs.log_page(job_id, tenant, after=after, limit=limit)
    return LogPage(job_id=job_id, lines=lines, next_cursor=next_cursor)


@router.post("/{job_id}/cancel", response_model=JobOut, responses={**_JOB, 409: PROBLEM})
def cancel_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
    """Only a scheduled, pending or retrying job can be cancelled; a running one answers
    409. A cancelled scheduled job never runs, even when its wake-up comes later."""
    return JobOut.of(svc.jobs.cancel(job_id, tenant))


@router.post("/{job_id}/retry", response_model=JobOut, responses={**_JOB, 409: PROBLEM})
def retry_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
    """Run a failed job again with a fresh attempt budget (its DLQ message becomes stale)."""
    return JobOut.of(svc.jobs.redrive(job_id, actor=f"api:{tenant}", tenant=tenant))
