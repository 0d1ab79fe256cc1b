"""`/jobs` (filters, paging over the indexes, lookup by id or idempotency key) and
`/jobs/{id}` (every field, payload and result, the timeline, cancel and redrive).

Listings are `JobService.list_jobs` (a Query on the status or task index) or, with
neither filter, `list_newest` (a Query per status), as `taskq jobs ls`; the actions are
the CLI's too: cancel is `JobService.cancel`, redrive is `taskq dlq redrive --id`.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from taskq.auth import TENANT_PATTERN
from taskq.dashboard.app import Dashboard, dashboard_of
from taskq.dashboard.security import checked_form
from taskq.dlq import DELETED, Selector
from taskq.errors import JobNotFound, UsageError
from taskq.models import (
    CURSOR_PATTERN,
    DEFAULT_TENANT,
    TASK_NAME_PATTERN,
    TERMINAL,
    Job,
    Priority,
    Progress,
    Status,
    is_idempotency_key,
    is_job_id,
)
from taskq.store import LIST_LIMIT_MAX
from taskq.store.lines import LOG_PAGE_MAX

router = APIRouter()
PAGE_SIZE = 25
FOLD_CHARS = 2_000  # payloads and results longer than this start folded
CANCELLABLE = frozenset({Status.SCHEDULED, Status.PENDING, Status.RETRYING})
CURSOR_RE = re.compile(CURSOR_PATTERN)
TASK_RE = re.compile(TASK_NAME_PATTERN)
TENANT_RE = re.compile(TENANT_PATTERN)
E = TypeVar("E", bound=StrEnum)


def _choice(kind: type[E], value: str | None, name: str) -> E | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(v) for v in kind)
        raise UsageError(f"{name} must be one of {allowed}") from None


def _name(pattern: re.Pattern[str], value: str | None, name: str) -> str | None:
    """A task or tenant filter, when it could name one (anything else matches no job, and
    would only reach DynamoDB as a key it refuses)."""
    if not value:
        return None
    if not pattern.fullmatch(value):
        raise UsageError(f"{name} {value[:80]!r} cannot name a {name}")
    return value


def _limit(value: str | None) -> int:
    if not value:
        return PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= LIST_LIMIT_MAX:
        raise UsageError(f"limit must be a whole number from 1 to {LIST_LIMIT_MAX}")
    return int(value)


@router.get("/jobs")
def jobs_list(request: Request) -> Response:
    """The listing; `q` looks one job up by id or idempotency key (with `tenant`)."""
    dashboard = dashboard_of(request)
    params = request.query_params
    lookup = (params.get("q") or "").strip()
    if lookup:
        key_tenant = _name(TENANT_RE, params.get("tenant"), "tenant") or DEFAULT_TENANT
        return _lookup(dashboard, request, lookup, key_tenant)
    status = _choice(Status, params.get("status"), "status")
    priority = _choice(Priority, params.get("priority"), "priority")
    task = _name(TASK_RE, params.get("task"), "task")
    tenant = _name(TENANT_RE, params.get("tenant"), "tenant")
    limit = _limit(params.get("limit"))
    cursor = params.get("cursor") or None
    if cursor is not None and not CURSOR_RE.fullmatch(cursor):
        raise UsageError("cursor is not one this dashboard gave")
    filters = {"status": status, "task": task, "tenant": tenant, "priority": priority}
    jobs, next_cursor = dashboard.services.jobs.browse(
        status=status, task=task, tenant=tenant, priority=priority, limit=limit, cursor=cursor
    )
    shown = {k: str(v) for k, v in filters.items() if v is not None}
    context = {
        "page": "jobs",
        "jobs": jobs,
        "filters": shown,
        "limit": limit,
        "statuses": list(Status),
        "priorities": list(Priority),
        "tasks": sorted(task.name for task in dashboard.services.registry),
        "next_url": f"/jobs?{urlencode({**shown, 'limit': limit, 'cursor': next_cursor})}"
        if next_cursor
        else None,
        "paged": cursor is not None,
        "first_url": f"/jobs?{urlencode({**shown, 'limit': limit})}",
    }
    return dashboard.render(request, "jobs.html", context)


def _lookup(dashboard: Dashboard, request: Request, text: str, tenant: str) -> Response:
    job: Job | None = None
    if is_job_id(text):
        job = dashboard.services.jobs.find(text)
    if job is None and is_idempotency_key(text):
        job = dashboard.services.jobs.find_by_key(text, tenant)
    if job is None:
        raise JobNotFound(f"no job with id or idempotency key {text!r} (tenant {tenant})")
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> Response:
    dashboard = dashboard_of(request)
    job, log_lines, _ = dashboard.services.jobs.log_page(_job_id(job_id), limit=LOG_PAGE_MAX)
    fields = job.model_dump(mode="json", exclude={"events", "payload", "result", "progress"})
    context = {
        "page": "jobs",
        "job": job,
        "fields": fields,
        "payload": _pretty(job.payload),
        "result": _pretty(job.result),
        "fold_chars": FOLD_CHARS,
        "progress": _progress(job.progress),
        "log_lines": log_lines,  # the first 500; `taskq logs ID` pages through the rest
        "can_cancel": job.status in CANCELLABLE,
        "can_redrive": job.status == Status.FAILED,
        "finished": job.status in TERMINAL,
    }
    return dashboard.render(request, "job.html", context)


@router.post("/jobs/{job_id}/cancel")
async def cancel(request: Request, job_id: str) -> Response:
    dashboard = dashboard_of(request)
    await checked_form(dashboard.guard, request)
    checked = _job_id(job_id)
    await run_in_threadpool(lambda: dashboard.services.jobs.cancel(checked, actor=dashboard.actor))
    return RedirectResponse(f"/jobs/{checked}", status_code=303)


@router.post("/jobs/{job_id}/redrive")
async def redrive(request: Request, job_id: str) -> Response:
    dashboard = dashboard_of(request)
    await checked_form(dashboard.guard, request)
    checked = _job_id(job_id)
    await run_in_threadpool(redrive_job, dashboard, checked)
    return RedirectResponse(f"/jobs/{checked}", status_code=303)


def redrive_job(dashboard: Dashboard, job_id: str) -> None:
    """`taskq dlq redrive --id JOB`: reset, re-send, and only then delete its DLQ message.
    A failed job without a DLQ message (purged) is redriven as the API's retry does."""
    report = dashboard.dead.redrive(Selector(ids=frozenset({job_id})), actor=dashboard.actor)
    if not any(outcome.action in DELETED for outcome in report.outcomes):
        dashboard.services.jobs.redrive(job_id, actor=dashboard.actor)


def _job_id(value: str) -> str:
    if not is_job_id(value):
        raise JobNotFound(f"{value!r} is not a job id (32 lowercase hex characters)")
    return value


def _pretty(value: Any) -> str | None:
    return None if value is None else json.dumps(value, indent=2, ensure_ascii=False)


def _progress(progress: Progress | None) -> dict[str, Any] | None:
    """The task's latest report: a bar for a fraction, and its message or JSON object."""
    if progress is None:
        return None
    percent = None if progress.fraction is None else round(progress.fraction * 100)
    detail = None if progress.detail is None else json.dumps(progress.detail, ensure_ascii=False)
    return {
        "percent": percent,
        "message": progress.message,
        "detail": detail,
        "attempt": progress.attempt,
        "at": progress.at,
    }
