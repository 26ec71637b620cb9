"""Dependencies as `Annotated` aliases, so route signatures read as typed contracts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app import keys
from app.errors import Unauthorized
from app.services import Services

_bearer = HTTPBearer(auto_error=False, description="an API key from `unlearn keys create --tenant NAME`")
DEFAULT_TENANT = "default"


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def tenant(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The caller's tenant: from its API key, or the single default tenant when auth is off."""
    svc = services(request)
    if svc.settings.auth == "none":
        return DEFAULT_TENANT
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("send an API key as 'Authorization: Bearer KEY'", www_authenticate="Bearer")
    return keys.tenant_for(svc.sessions, credentials.credentials)


Tenant = Annotated[str, Depends(tenant)]
ServicesDep = Annotated[Services, Depends(services)]
