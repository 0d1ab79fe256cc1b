"""HTTP errors as RFC 9457 problem+json: the one place errors become status codes.

No stack trace, exception class or AWS resource name ever reaches a client; the
full error goes to the log with the request id instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from taskq.errors import (
    BackendError,
    Conflict,
    IdempotencyConflict,
    InvalidRequest,
    JobNotFound,
    PayloadTooLarge,
    TaskqError,
    Unauthorized,
)
from taskq.log import logger

MEDIA_TYPE = "application/problem+json"

# Most specific first: the first matching class decides.
_STATUS: list[tuple[type[TaskqError], int, str]] = [
    (PayloadTooLarge, 413, "payload-too-large"),
    (InvalidRequest, 422, "invalid-request"),
    (Unauthorized, 401, "unauthorized"),
    (JobNotFound, 404, "not-found"),
    (IdempotencyConflict, 409, "idempotency-conflict"),
    (Conflict, 409, "conflict"),
    (BackendError, 503, "backend-unavailable"),
]

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_body(
    status: int, detail: str, *, kind: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": f"urn:taskq:problem:{kind or _slug(status)}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(status, detail, kind=kind, **extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def describe(exc: TaskqError) -> dict[str, Any]:
    """The problem body for a taskq error (also used per item in batch answers)."""
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            if status == 503:
                logger.exception("backend error")
                return problem_body(status, "storage is temporarily unavailable; retry shortly",
                                    kind=kind)  # fmt: skip
            extra: dict[str, Any] = (
                {"field": exc.field} if isinstance(exc, InvalidRequest) and exc.field else {}
            )
            return problem_body(status, str(exc), kind=kind, **extra)
    logger.exception("unmapped taskq error")
    return problem_body(500, "internal error", kind="internal")


def install(app: FastAPI) -> None:
    @app.exception_handler(TaskqError)
    async def taskq_error(request: Request, exc: TaskqError) -> JSONResponse:
        body = describe(exc)
        headers = {503: {"Retry-After": "1"}, 401: {"WWW-Authenticate": "Bearer"}}.get(
            body["status"]
        )
        return JSONResponse(
            body, status_code=body["status"], media_type=MEDIA_TYPE, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and media != "application/json" and await request.body():
            # FastAPI reads only JSON bodies as JSON; say so instead of "not a dictionary".
            return problem(
                415,
                "send the body as JSON with Content-Type: application/json "
                f"(got {media or 'none'})",
                kind="unsupported-media-type",
            )
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        return problem(
            422, f"{first['field']}: {first['message']}", kind="invalid-request", errors=errors
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return problem(500, "internal error", kind="internal")


def _slug(status: int) -> str:
    return _TITLES.get(status, "error").lower().replace(" ", "-")
