"""RFC 9457 problem+json for every error: domain errors, validation errors, unknown routes, crashes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import AppError

log = logging.getLogger("unlearn.api")
MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> JSONResponse:
    body = {"type": f"https://unlearn.dev/problems/{code}", "title": title, "status": status, "detail": detail}
    body["code"] = code
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
    if "www_authenticate" in extra:
        headers["WWW-Authenticate"] = str(extra.pop("www_authenticate"))
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem(exc.status, exc.title, exc.detail, exc.code, **exc.extra)


def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors) or "invalid request"
    return problem(422, "Invalid input", detail, "invalid_input", errors=errors)


def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Payload too large"}
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "bad_request")
    response = problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail), code)
    for k, v in (exc.headers or {}).items():
        response.headers[k] = v
    return response


def _database(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", str(exc).splitlines()[0][:200])
    return problem(
        503, "Service unavailable", "the job store is unavailable; try again shortly", "unavailable", retry_after=5
    )


def _crash(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal error", "the server failed to handle this request; it has been logged", "internal")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(Exception, _crash)
