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
    """The caller's tenant: from its API key (rate-limited per key), or the default tenant when auth is off."""
    svc = services(request)
    if svc.settings.auth == "none":
        return DEFAULT_TENANT
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("send an API key as 'Authorization: Bearer KEY'", www_authenticate="Bearer")
    key = keys.lookup(svc.sessions, credentials.credentials)
    who = key.key_hash[:16]
    svc.limiter.hit(who, "all", svc.settings.rate_limit_per_minute)
    if request.method == "POST" and request.url.path == "/unlearn":
        svc.limiter.hit(who, "submit", svc.settings.submit_limit_per_minute)
    return key.tenant


Tenant = Annotated[str, Depends(tenant)]
ServicesDep = Annotated[Services, Depends(services)]
