"""HTTP errors as RFC 9457 problem+json: the one place errors become status codes.

No stack trace, exception class or AWS resource name ever reaches a client; the
full error goes to the log with the request id instead.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
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


class FieldError(BaseModel):
    field: str = Field(description="where: the location (body, query, path, header), then the path")
    message: str


class Problem(BaseModel):
    """Every error answer's body (RFC 9457), documented once for the OpenAPI schema."""

    model_config = ConfigDict(title="Problem")

    type: str = Field(description="urn:taskq:problem:<kind>, stable for programs to test")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    field: str | None = Field(default=None, description="the input at fault, e.g. payload.x.y")
    errors: list[FieldError] | None = Field(default=None, description="every validation error")


PROBLEM_REF = "#/components/schemas/Problem"
# A response answered with a problem, as a route's `responses` entry; create_app adds
# the Problem schema (and FieldError, which it refers to) to the schema's components.
PROBLEM: dict[str, Any] = {
    "description": "a problem (RFC 9457)",
    "content": {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
}


def problem_components() -> dict[str, Any]:
    """Problem and FieldError as OpenAPI component schemas."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"Problem": schema, **schema.pop("$defs", {})}


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
        content_type = request.headers.get("content-type")
        media = (content_type or "").split(";")[0].strip().lower()
        if request.method == "POST" and not is_json_media(content_type) and await request.body():
            # FastAPI reads only JSON bodies as JSON; say so instead of "not a dictionary".
            return problem(
                415,
                "send the body as JSON with Content-Type: application/json "
                f"(got {media or 'none'})",
                kind="unsupported-media-type",
            )
        locs = [tuple(str(p) for p in e.get("loc", ())) for e in exc.errors()]
        errors = [
            {"field": ".".join(loc), "message": e.get("msg", "")}
            for loc, e in zip(locs, exc.errors(), strict=True)
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        # `field` names the input as taskq's own errors do: without the location (body,
        # query, path, header), e.g. payload.x.y; `errors` keeps the location.
        field = ".".join(locs[0][1:]) if locs and len(locs[0]) > 1 else first["field"]
        return problem(
            422,
            f"{first['field']}: {first['message']}",
            kind="invalid-request",
            field=field,
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405 and (allowed := _allowed(request)):
            headers = {**(headers or {}), "Allow": allowed}
        return problem(exc.status_code, detail, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return problem(500, "internal error", kind="internal")


def is_json_media(content_type: str | None) -> bool:
    """FastAPI's rule for a body it reads as JSON: application/json or application/*+json."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _allowed(request: Request) -> str:
    """The methods the OpenAPI schema documents for the request's path, for a 405's Allow.

    Starlette names only the methods of the first route whose path matched, and /jobs is
    two routes (GET and POST): its Allow said POST alone.
    """
    paths: dict[str, Any] = request.app.openapi().get("paths", {})
    path = request.url.path
    methods = {
        method.upper()
        for template, operations in paths.items()
        if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), path)
        for method in operations
    }
    return ", ".join(sorted(methods))


def _slug(status: int) -> str:
    return _TITLES.get(status, "error").lower().replace(" ", "-")
