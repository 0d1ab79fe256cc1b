"""The HTTP API (FastAPI): routes validate input and call jobs.py; functions/api adds Mangum."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskq import problems
from taskq.errors import InvalidRequest
from taskq.jobs import Submitted
from taskq.models import (
    DEFAULT_TENANT,
    IDEMPOTENCY_KEY_PATTERN,
    JOB_ID_PATTERN,
    TASK_NAME_PATTERN,
    BatchItemResult,
    BatchOut,
    BatchRequest,
    EventsOut,
    JobOut,
    JobPage,
    JobRequest,
    Status,
    TaskInfo,
)
from taskq.wiring import Services, services

BODY_MAX_BYTES = 320 * 1024  # a 256 KiB payload plus its envelope

JobIdParam = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="32 lowercase hex characters")]
ServicesDep = Annotated[Services, Depends(services)]
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-Api-Key", auto_error=False, description="the API key")


def caller_tenant(
    svc: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str:
    """The tenant of the presented API key; everything a caller touches is scoped to it."""
    if svc.auth is None:
        return DEFAULT_TENANT
    return svc.auth.tenant_for(bearer.credentials if bearer else api_key)


TenantDep = Annotated[str, Depends(caller_tenant)]

PROBLEM = {"model": dict[str, Any], "content": {problems.MEDIA_TYPE: {}}}


class BodyLimit:
    """Refuse oversized bodies with 413 before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problems.problem(
            413, f"request body is larger than {self.limit} bytes", kind="payload-too-large"
        )
        await response(scope, receive, send)


def create_app() -> FastAPI:
    app = FastAPI(
        title="taskq",
        version="0.1.0",
        description="Submit background jobs; taskq stores, runs, retries and dead-letters them.",
        responses={401: PROBLEM, 415: PROBLEM, 422: PROBLEM, 500: PROBLEM, 503: PROBLEM},
    )
    problems.install(app)

    @app.post(
        "/jobs",
        status_code=202,
        response_model=JobOut,
        responses={409: PROBLEM, 413: PROBLEM, 503: PROBLEM},
    )
    def submit_job(
        request: JobRequest,
        response: Response,
        svc: ServicesDep,
        tenant: TenantDep,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                description="same key + same body returns the same job; a different body: 409",
            ),
        ] = None,
    ) -> JobOut:
        if idempotency_key is not None and not _matches(IDEMPOTENCY_KEY_PATTERN, idempotency_key):
            raise InvalidRequest(
                "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -",
                field="Idempotency-Key",
            )
        submitted = svc.jobs.submit(request, idempotency_key, tenant)
        response.headers["Location"] = f"/jobs/{submitted.job.id}"
        if submitted.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return JobOut.of(submitted.job)

    @app.post("/jobs:batch", status_code=202, response_model=BatchOut, responses={413: PROBLEM})
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

    @app.get("/jobs", response_model=JobPage)
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

    @app.get("/jobs/{job_id}", response_model=JobOut, responses={404: PROBLEM})
    def get_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
        return JobOut.of(svc.jobs.get(job_id, tenant))

    @app.get("/jobs/{job_id}/events", response_model=EventsOut, responses={404: PROBLEM})
    def job_events(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> EventsOut:
        return EventsOut(job_id=job_id, events=list(svc.jobs.get(job_id, tenant).events))

    @app.post(
        "/jobs/{job_id}/cancel", response_model=JobOut, responses={404: PROBLEM, 409: PROBLEM}
    )
    def cancel_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
        """Only a pending or retrying job can be cancelled; a running one answers 409."""
        return JobOut.of(svc.jobs.cancel(job_id, tenant))

    @app.post("/jobs/{job_id}/retry", response_model=JobOut, responses={404: PROBLEM, 409: PROBLEM})
    def retry_job(job_id: JobIdParam, svc: ServicesDep, tenant: TenantDep) -> JobOut:
        """Run a failed job again with a fresh attempt budget (its DLQ message becomes stale)."""
        return JobOut.of(svc.jobs.redrive(job_id, actor=f"api:{tenant}", tenant=tenant))

    @app.get("/tasks", response_model=list[TaskInfo])
    def list_tasks(svc: ServicesDep, tenant: TenantDep) -> list[TaskInfo]:
        return [
            TaskInfo(
                name=t.name,
                max_attempts=t.policy.max_attempts or svc.settings.default_max_attempts,
                timeout_s=t.policy.timeout_s,
                payload_schema=t.schema(),
            )
            for t in svc.registry
        ]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit, limit=BODY_MAX_BYTES)
    return app


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None
