"""What routes depend on: the process's services, the caller's tenant, the problem shape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from taskq import problems
from taskq.models import DEFAULT_TENANT, JOB_ID_PATTERN
from taskq.wiring import Services, services

JobIdParam = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="32 lowercase hex characters")]
ServicesDep = Annotated[Services, Depends(services)]
PROBLEM: dict[str, Any] = {"model": dict[str, Any], "content": {problems.MEDIA_TYPE: {}}}

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-Api-Key", auto_error=False, description="the API key")


def caller_tenant(
    svc: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str:
    """The tenant of the presented API key; everything a caller touches is scoped to it."""
    if svc.auth is None:
        return DEFAULT_TENANT
    return svc.auth.tenant_for(bearer.credentials if bearer else api_key)


TenantDep = Annotated[str, Depends(caller_tenant)]
