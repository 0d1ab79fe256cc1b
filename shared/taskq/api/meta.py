"""What the service offers and whether it is up: /tasks and /healthz."""

from __future__ import annotations

from fastapi import APIRouter

from taskq.api.deps import KEYED, ServicesDep, TenantDep
from taskq.models import TaskInfo

router = APIRouter()


@router.get("/tasks", response_model=list[TaskInfo], responses=KEYED)
def list_tasks(svc: ServicesDep, tenant: TenantDep) -> list[TaskInfo]:
    """The registered tasks with their payload JSON schemas (a key is needed, like /jobs)."""
    return [
        TaskInfo(
            name=t.name,
            priority=t.priority,
            max_attempts=t.policy.max_attempts or svc.settings.default_max_attempts,
            timeout_s=t.policy.timeout_s,
            payload_schema=t.schema(),
        )
        for t in svc.registry
    ]


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
