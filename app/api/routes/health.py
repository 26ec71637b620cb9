"""Liveness, readiness and metrics. These need no API key."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app import metrics
from app.api.deps import ServicesDep

log = logging.getLogger("unlearn.api")
router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (it checks nothing else)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is down (the body names it)"}})
def readyz(svc: ServicesDep) -> JSONResponse:
    """Ready to take jobs: the database, the broker, the artifact storage and the model registry answer."""
    checks: dict[str, Any] = {}

    def probe(name: str, fn: Any) -> None:
        try:
            fn()
            checks[name] = "ok"
        except Exception as exc:
            log.warning("readyz: %s is down: %s", name, exc)
            checks[name] = f"down: {type(exc).__name__}"

    def database() -> None:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def models() -> None:
        if svc.settings.default_model not in svc.settings.models:
            raise LookupError("default model missing")

    probe("database", database)
    probe("broker", svc.queue.ping)
    probe("storage", svc.storage.check)
    probe("models", models)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
def prometheus(svc: ServicesDep) -> Response:
    """Prometheus text format: jobs by status, queue depth, job durations."""
    return Response(generate_latest(metrics.registry(svc.store, svc.queue)), media_type=CONTENT_TYPE_LATEST)
