"""The dashboard's FastAPI app: its pages, the guard in front of them, and its error pages.

Every page is a sync route (FastAPI runs it in its thread pool), because every read and
change is a call of the same library the CLI uses (JobService, DeadLetters, stats,
ScheduleService), which talks to AWS through boto3.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from taskq import problems
from taskq.cli.render import age_span
from taskq.dashboard.security import (
    AUTH_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    TOKEN_PARAM,
    Guard,
    Refused,
)
from taskq.dlq import DeadLetters
from taskq.errors import ConfigError, TaskqError, UsageError
from taskq.log import logger
from taskq.text import first_line
from taskq.wiring import Services

HERE = Path(__file__).resolve().parent
STATIC_VERSION = "1"  # in the static files' URLs: raise it when they change
# Scripts and styles only from this origin: a payload that slipped past escaping still
# could not run, and no page can be framed by another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass
class Dashboard:
    """What the pages work with: the library's services, who acts, the guard, templates."""

    services: Services
    actor: str
    guard: Guard
    templates: Jinja2Templates
    stack_label: str
    memo: dict[str, object] = field(default_factory=dict)  # what pages keep between requests

    @cached_property
    def dead(self) -> DeadLetters:
        """The DLQ operations over the same store and queue as the job service (as the CLI's)."""
        return DeadLetters(self.services.store, self.services.queue)

    def render(
        self, request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        session = request.cookies.get(SESSION_COOKIE) or getattr(request.state, "new_session", None)
        csrf = self.guard.csrf_token(session) if session else ""
        full = {"csrf": csrf, "csrf_field": CSRF_FIELD, "stack": self.stack_label, **context}
        return self.templates.TemplateResponse(request, template, full, status_code=status)


def dashboard_of(request: Request) -> Dashboard:
    dashboard = request.app.state.dashboard
    assert isinstance(dashboard, Dashboard)
    return dashboard


def create_app(
    services: Services, *, actor: str, port: int, token: str | None = None, stack_label: str = ""
) -> FastAPI:
    """The dashboard for one stack. `port` is where it listens (the Host check needs it)."""
    from taskq.dashboard.pages import dlq, jobs, overview, schedules

    app = FastAPI(title="taskq dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["static_version"] = STATIC_VERSION
    templates.env.filters.update(utc=_utc, epoch=_epoch, age=age_span)
    guard = Guard(port=port, token=token)
    app.state.dashboard = Dashboard(services, actor, guard, templates, stack_label)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for page in (overview, jobs, dlq, schedules):
        app.include_router(page.router)
    app.middleware("http")(_guarded)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(TaskqError, _library_error)
    app.add_exception_handler(BotoCoreError, _aws_error)
    app.add_exception_handler(ClientError, _aws_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    return app


async def _guarded(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Host and token on every request; a new session cookie for a browser without one.

    Cookies are SameSite=Lax: a link shared in a chat opens with them (Strict would not
    send them on that first navigation: a 401, or a new session that voids the CSRF token
    of the operator's other tabs), while another site's POST still carries none.
    """
    dashboard = dashboard_of(request)
    guard = dashboard.guard
    try:
        guard.check_host(request)
        if guard.logs_in(request):
            # Trade the token in the URL for a cookie, and drop it from the address bar.
            query = urlencode(
                [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
            )
            target = request.url.path + (f"?{query}" if query else "")
            response: Response = RedirectResponse(target, 303)
            response.set_cookie(AUTH_COOKIE, guard.auth_cookie(), httponly=True, samesite="lax")
            return _secured(response)
        guard.check_token(request)
    except Refused as exc:
        return _secured(_error_page(request, exc.status, exc.reason))
    new_session = None
    if not request.cookies.get(SESSION_COOKIE):
        new_session = guard.new_session()
        request.state.new_session = new_session
    response = await call_next(request)
    if new_session is not None:
        response.set_cookie(SESSION_COOKIE, new_session, httponly=True, samesite="lax")
    return _secured(response)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _epoch(seconds: float) -> str:
    return _utc(datetime.fromtimestamp(seconds, UTC))


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _error_page(request: Request, status: int, message: str) -> Response:
    """An HTML page for a browser; problem+json for a script that asks for JSON."""
    accept = request.headers.get("accept", "")
    if "json" in accept and "text/html" not in accept:
        return problems.problem(status, message)
    dashboard = dashboard_of(request)
    return dashboard.render(
        request, "error.html", {"status": status, "message": message}, status=status
    )


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return _error_page(request, exc.status, exc.reason)


async def _library_error(request: Request, exc: Exception) -> Response:
    """The library's errors as the API states them (404, 409, 422, 503), or 400 for what
    the operator typed into a form (a bad duration, regex or selection)."""
    assert isinstance(exc, TaskqError)
    if isinstance(exc, UsageError | ConfigError):
        return _error_page(request, 400, str(exc))
    body = problems.describe(exc)
    return _error_page(request, int(body["status"]), str(body["detail"]))


async def _aws_error(request: Request, exc: Exception) -> Response:
    logger.warning("dashboard: AWS call failed", extra={"error": first_line(exc)})
    return _error_page(request, 503, f"cannot reach AWS: {first_line(exc, 200)}")


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    where = ".".join(str(p) for p in errors[0].get("loc", ())[1:]) if errors else "request"
    message = errors[0].get("msg", "invalid") if errors else "invalid"
    return _error_page(request, 400, f"{where}: {message}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "no such page", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    return _error_page(request, exc.status_code, str(message))


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("dashboard: unexpected error")
    return _error_page(request, 500, "internal error (the dashboard's log has the details)")
