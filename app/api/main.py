"""`create_app(settings)`: the clients are built once in the lifespan and hung on typed state.

uvicorn --factory app.api.main:create_app     (settings from the environment)
unlearn serve                                 (the embedded default, with its in-process worker)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI

from app.api import problems
from app.api.headers import SecurityHeaders
from app.api.limits import BodyLimit
from app.api.routes import health, jobs, submit
from app.services import Services, build_services
from app.settings import Settings, get_settings

FORM_OVERHEAD = 1024 * 1024  # room for the form's text fields and part headers


def _version() -> str:
    try:
        return metadata.version("unlearn")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    on_shutdown: Sequence[Callable[[], None]] = (),
) -> FastAPI:
    """The API. `services` lets the embedded server share its worker's queue; tests pass their own.

    `on_shutdown` runs when the server stops (uvicorn re-raises SIGTERM after its own shutdown, so
    code after `uvicorn.run` may never run; this does).
    """
    settings = settings or (services.settings if services else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or build_services(settings)
        yield
        for stop in on_shutdown:
            stop()
        if services is None:
            app.state.services.close()

    app = FastAPI(
        title="unlearn",
        version=_version(),
        summary="Erase a concept from a text-to-image diffusion model on demand.",
        description=(
            "Post a concept and 1-20 example images to `POST /unlearn`; poll `GET /jobs/{id}`; download the "
            "adapter (`pytorch_lora_weights.safetensors`, kohya, textual-inversion token, manifest, report) "
            "from `GET /jobs/{id}/artifacts/{name}`. Errors are RFC 9457 problem+json. "
            "Authenticate with `Authorization: Bearer KEY` unless the server runs without keys (loopback only)."
        ),
        lifespan=lifespan,
    )
    problems.install(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_total_bytes + FORM_OVERHEAD)
    app.add_middleware(SecurityHeaders)
    app.include_router(submit.router)
    app.include_router(jobs.router)
    app.include_router(health.router)
    return app
