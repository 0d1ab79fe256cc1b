"""The HTTP API (FastAPI): routers per resource call the library; functions/api adds Mangum.

- `deps`: what a route depends on (the services, the caller's tenant) and shared shapes;
- `jobs`: /jobs and everything under it;
- `meta`: /tasks and /healthz;
- `limits`: the body-size limit, applied before anything parses a body;
- `body`: how a JSON body is parsed (strictly, once);
- `fastapi_compat`: one measured shim, FastAPI's pydantic.v1 check without the import.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from taskq.api.fastapi_compat import skip_v1_import_when_unused

# Before the routers' modules: their routes are built when they are imported.
skip_v1_import_when_unused()

from taskq import problems  # noqa: E402
from taskq.api import jobs, meta  # noqa: E402
from taskq.api.deps import ANY_ROUTE  # noqa: E402
from taskq.api.limits import BODY_MAX_BYTES, BodyLimit  # noqa: E402


def create_app() -> FastAPI:
    app = FastAPI(
        title="taskq",
        version="0.1.0",
        description=(
            "Submit background jobs; taskq stores, runs, retries and dead-letters them."
            " Every error is an application/problem+json body (RFC 9457). Behind API Gateway"
            " a request may also be refused before it reaches taskq (429 when throttled, 413"
            " over 10 MB, 431 when the request line and headers exceed 10240 bytes), with a"
            ' JSON body {"message": ...}.'
        ),
        responses=ANY_ROUTE,
    )
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(meta.router)
    app.add_middleware(BodyLimit, limit=BODY_MAX_BYTES)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, plus the Problem schema every error response refers to."""
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                problems.problem_components()
            )
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    return app


__all__ = ["BODY_MAX_BYTES", "create_app"]
