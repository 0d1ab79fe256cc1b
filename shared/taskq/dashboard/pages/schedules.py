"""`/schedules`: each periodic schedule's next fire times and state; pause, resume and
trigger, each one call of ScheduleService, as `taskq schedules` makes them."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from taskq.dashboard.app import dashboard_of
from taskq.dashboard.security import checked_form

router = APIRouter()
UPCOMING = 3


@router.get("/schedules")
def schedules_list(request: Request) -> Response:
    dashboard = dashboard_of(request)
    views = dashboard.services.schedules.views(UPCOMING)
    return dashboard.render(request, "schedules.html", {"page": "schedules", "views": views})


@router.post("/schedules/{name}/{action}")
async def schedule_action(request: Request, name: str, action: str) -> Response:
    dashboard = dashboard_of(request)
    await checked_form(dashboard.guard, request)
    service, actor = dashboard.services.schedules, dashboard.actor
    if action == "pause":
        await run_in_threadpool(service.pause, name, actor)
    elif action == "resume":
        await run_in_threadpool(service.resume, name, actor)
    elif action == "trigger":
        job = await run_in_threadpool(service.trigger, name, actor)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)
    else:
        raise HTTPException(404)
    return RedirectResponse("/schedules", status_code=303)
