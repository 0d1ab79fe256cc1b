"""`/dlq`: the DLQ's messages, filtered like `taskq dlq ls`; select some or all matching,
preview (a dry run), then redrive or purge what the preview showed.

The same steps as the CLI's `_preview_confirm_apply`, over the same library calls:
`DeadLetters.redrive`/`purge` with `dry_run=True` for the preview, then again limited
(`restrict_to`) to the messages the operator confirmed; a purge keeps the CLI's audit
trail (`taskq.dlq.record_purge`). The selection is `taskq.cli.options.make_selector`,
so a filter means here what it means on the command line.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from taskq.cli.options import MESSAGE_ID_RE, make_selector, parse_duration
from taskq.dashboard.app import Dashboard, dashboard_of
from taskq.dashboard.security import Form, checked_form
from taskq.dlq import Action, Report, Selector, record_purge
from taskq.errors import UsageError

router = APIRouter()
LIST_LIMIT = 100
OPERATIONS = ("redrive", "purge")
FILTERS = ("task", "error_match", "older_than", "newer_than")
CHANGING = frozenset({Action.REDRIVEN, Action.REQUEUED, Action.CLEARED, Action.PURGED})


def selector_from(values: dict[str, str], ids: list[str], *, everything: bool) -> Selector:
    """The CLI's selector from the form's fields (named like its options)."""
    pattern = values.get("error_match") or None
    try:
        error_match = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise UsageError(f"error match {pattern!r} is not a regular expression: {exc}") from None
    try:
        older = parse_duration(values["older_than"]) if values.get("older_than") else None
        newer = parse_duration(values["newer_than"]) if values.get("newer_than") else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return make_selector(
        ids, values.get("task") or None, error_match, older, newer, everything, required=False
    )


def _filters(source: QueryParams | Form) -> dict[str, str]:
    get = source.get if isinstance(source, QueryParams) else source.first
    return {name: value for name in FILTERS if (value := (get(name) or "").strip())}


@router.get("/dlq")
def dlq_list(request: Request) -> Response:
    dashboard = dashboard_of(request)
    filters = _filters(request.query_params)
    selector = selector_from(filters, [], everything=False)
    scan = dashboard.dead.list_messages(selector, limit=LIST_LIMIT)
    context = {
        "page": "dlq",
        "scan": scan,
        "filters": filters,
        "now": dashboard.dead.clock(),
        "limit": LIST_LIMIT,
    }
    return dashboard.render(request, "dlq.html", context)


def _chosen(form: Form) -> tuple[str, dict[str, str], Selector]:
    """The operation and selection a preview or apply form carries."""
    operation = form.first("operation") or ""
    if operation not in OPERATIONS:
        raise UsageError("operation must be redrive or purge")
    filters = _filters(form)
    if form.first("scope") == "matching":
        selector = selector_from(filters, [], everything=not filters)
    else:
        ids = [i for i in form.all("id") if i]
        if not ids:
            raise UsageError("select at least one message, or choose all matching")
        selector = selector_from({}, ids, everything=False)
    return operation, filters, selector


def _run(
    dashboard: Dashboard, operation: str, selector: Selector, restrict: frozenset[str] | None
) -> Report:
    """One pass of the library's redrive or purge: a dry run without `restrict`."""
    dead, actor = dashboard.dead, dashboard.actor
    if operation == "redrive":
        return dead.redrive(selector, actor=actor, dry_run=restrict is None, restrict_to=restrict)
    audit = partial(record_purge, dashboard.services.store)
    return dead.purge(
        selector, actor=actor, audit=audit, dry_run=restrict is None, restrict_to=restrict
    )


def _form_echo(form: Form, operation: str, filters: dict[str, str]) -> dict[str, Any]:
    return {
        "operation": operation,
        "filters": filters,
        "scope": form.first("scope") or "selected",
        "ids": [i for i in form.all("id") if i],
    }


@router.post("/dlq/preview")
async def dlq_preview(request: Request) -> Response:
    """The dry run: what redrive or purge would do to each selected message."""
    dashboard = dashboard_of(request)
    form = await checked_form(dashboard.guard, request)
    operation, filters, selector = _chosen(form)
    report = await run_in_threadpool(_run, dashboard, operation, selector, None)
    todo = [o for o in report.outcomes if o.action in CHANGING]
    context = {
        "page": "dlq",
        "report": report,
        "todo": todo,
        "confirm_ids": [o.entry.message_id for o in report.outcomes],
        **_form_echo(form, operation, filters),
    }
    return dashboard.render(request, "dlq_preview.html", context)


@router.post("/dlq/apply")
async def dlq_apply(request: Request) -> Response:
    """The confirmed pass, limited to the messages the preview showed."""
    dashboard = dashboard_of(request)
    form = await checked_form(dashboard.guard, request)
    operation, filters, selector = _chosen(form)
    confirmed = frozenset(i for i in form.all("confirm") if MESSAGE_ID_RE.match(i))
    if not confirmed:
        raise UsageError("nothing confirmed: preview the selection first")
    report = await run_in_threadpool(_run, dashboard, operation, selector, confirmed)
    context = {"page": "dlq", "report": report, **_form_echo(form, operation, filters)}
    return dashboard.render(request, "dlq_report.html", context)
