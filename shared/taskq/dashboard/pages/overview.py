"""`/`: jobs by status, queue and DLQ depth per queue, the oldest DLQ message's age, and
a chart of the last hour; `/overview/live` is the part the page re-reads every 5 s."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from taskq.dashboard.app import Dashboard, dashboard_of
from taskq.dashboard.chart import per_minute
from taskq.stats import collect, throughput

router = APIRouter()
REFRESH_S = 5  # the page polls the live part this often (the issue asks at most every 5 s)


def _figures(dashboard: Dashboard) -> dict[str, Any]:
    """The same figures as `taskq stats`, plus the last hour per minute."""
    stats = collect(dashboard.dead)
    return {
        "stats": stats,
        "chart": per_minute(throughput(dashboard.services.store)),
        "refresh_s": REFRESH_S,
    }


@router.get("/")
def overview(request: Request) -> Response:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "overview.html", {"page": "overview", **_figures(dashboard)})


@router.get("/overview/live")
def overview_live(request: Request) -> Response:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "_overview_live.html", _figures(dashboard))
