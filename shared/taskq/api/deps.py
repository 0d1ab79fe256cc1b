"""What routes depend on: the process's services, the caller's tenant, and the error
answers each kind of route can give (for its OpenAPI `responses`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from taskq.models import DEFAULT_TENANT, JOB_ID_PATTERN
from taskq.problems import PROBLEM
from taskq.wiring import Services, services

JobIdParam = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="32 lowercase hex characters")]
ServicesDep = Annotated[Services, Depends(services)]

Responses = dict[int | str, dict[str, Any]]
# Any route: a body over the limit (BodyLimit reads every request's), an unexpected error.
ANY_ROUTE: Responses = {413: PROBLEM, 500: PROBLEM}
# A route behind caller_tenant: no or a bad key; the key lookup's store unavailable.
KEYED: Responses = {401: PROBLEM, 503: PROBLEM}
# A route with parameters or a body: a value that breaks their rules.
CHECKED: Responses = {422: PROBLEM}
# A route with a JSON body: also a body sent as something else.
JSON_BODY: Responses = {**CHECKED, 415: PROBLEM}

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
