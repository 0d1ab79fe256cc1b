"""`/`: jobs by status, queue and DLQ depth per queue, the oldest DLQ message's age, and
a chart of the last hour; `/overview/live` is the part the page re-reads every 5 s.

The figures are read at most once per refresh period, whatever the number of open tabs:
the oldest DLQ message's age is found by reading the DLQ (SQS tells its age only to
CloudWatch), and a redrive or purge running meanwhile should not meet many such reads;
the counts are COUNT Queries, which DynamoDB charges by what they read. The chart, per
minute, is read once a minute, with at most CHART_PAGES pages (1 MB each) per status.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from taskq.dashboard.app import Dashboard, dashboard_of
from taskq.dashboard.chart import per_minute
from taskq.stats import collect, throughput

router = APIRouter()
REFRESH_S = 5  # the page polls the live part this often (the issue asks at most every 5 s)
CHART_REFRESH_S = 60  # the chart's unit is a minute
CHART_PAGES = 4


class _Recent:
    """The latest figures and when each part was read; one reader at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stats_at = self.chart_at = -float("inf")
        self.figures: dict[str, Any] = {"refresh_s": REFRESH_S}


def _figures(dashboard: Dashboard) -> dict[str, Any]:
    """The same figures as `taskq stats`, plus the last hour per minute (cached briefly)."""
    recent = dashboard.memo.setdefault("overview", _Recent())
    assert isinstance(recent, _Recent)
    with recent.lock:
        now = time.monotonic()
        if now - recent.stats_at >= REFRESH_S - 0.5:
            recent.figures["stats"] = collect(dashboard.dead)
            recent.stats_at = now
        if now - recent.chart_at >= CHART_REFRESH_S - 0.5:
            figures = throughput(dashboard.services.store, max_pages=CHART_PAGES)
            recent.figures["chart"] = per_minute(figures)
            recent.chart_at = now
        return dict(recent.figures)


@router.get("/")
def overview(request: Request) -> Response:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "overview.html", {"page": "overview", **_figures(dashboard)})


@router.get("/overview/live")
def overview_live(request: Request) -> Response:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "_overview_live.html", _figures(dashboard))
