"""The HTTP API (FastAPI): routers per resource call the library; functions/api adds Mangum.

- `deps`: what a route depends on (the services, the caller's tenant) and shared shapes;
- `jobs`: /jobs and everything under it;
- `meta`: /tasks and /healthz;
- `limits`: the body-size limit, applied before anything parses a body.
"""

from __future__ import annotations

from fastapi import FastAPI

from taskq import problems
from taskq.api import jobs, meta
from taskq.api.deps import PROBLEM
from taskq.api.limits import BODY_MAX_BYTES, BodyLimit


def create_app() -> FastAPI:
    app = FastAPI(
        title="taskq",
        version="0.1.0",
        description="Submit background jobs; taskq stores, runs, retries and dead-letters them.",
        responses={401: PROBLEM, 415: PROBLEM, 422: PROBLEM, 500: PROBLEM, 503: PROBLEM},
    )
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(meta.router)
    app.add_middleware(BodyLimit, limit=BODY_MAX_BYTES)
    return app


__all__ = ["BODY_MAX_BYTES", "create_app"]
