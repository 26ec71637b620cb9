"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

Every generated request gets an answer that is not a server error and that matches the schema
(status codes, content types, bodies). At least 1000 cases run.
"""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.main import create_app
from app.queue import LocalQueue
from app.services import build_services
from app.settings import Settings

CASES: list[str] = []
# What the API promises. Not "positive data acceptance": a schema-valid request may still be refused
# for what a schema cannot say (an image that does not decode, a concept of punctuation only).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, format="PNG")
    return buf.getvalue()


def _app():
    """The API on SQLite and local files in a temporary directory, with a canceled job in it."""
    import tempfile

    from app import db

    s = Settings(
        data_dir=tempfile.mkdtemp(prefix="unlearn-fuzz-"), max_image_bytes=64 * 1024, max_total_bytes=256 * 1024
    )
    db.migrate(s.db_url)
    app = create_app(s, services=build_services(s, LocalQueue()))
    with TestClient(app) as client:
        job = client.post("/unlearn", data={"concept": "star"}, files={"images": _png()}).json()
        client.post(f"/jobs/{job['id']}/cancel")
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_response_is_documented_and_never_a_server_error(case):
    CASES.append(f"{case.method} {case.path}")
    case.call_and_validate(checks=CHECKS)


def test_at_least_1000_cases_ran():
    assert len(CASES) >= 1000, f"only {len(CASES)} cases"
