"""Reading jobs, canceling them and downloading their artifacts. Another tenant's job is a 404."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from app.api.deps import ServicesDep, Tenant
from app.errors import InvalidInput, NotFound
from app.jobs import Status
from app.schemas import JobOut, JobPage, problems

router = APIRouter(tags=["jobs"])
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MEDIA = {
    ".safetensors": "application/octet-stream",
    ".json": "application/json",
    ".png": "image/png",
}


def _check_id(job_id: str) -> str:
    if not _ID.match(job_id):
        raise NotFound(f"no job {job_id[:64]!r}")
    return job_id


@router.get("/jobs/{job_id}", response_model=JobOut, responses=problems(401, 404, 429))
def get_job(svc: ServicesDep, tenant: Tenant, job_id: str) -> JobOut:
    """The job: status, stage and progress while it runs; artifacts when it succeeded; error when it failed."""
    return JobOut.of(svc.store.get(_check_id(job_id), tenant))


@router.get("/jobs", response_model=JobPage, responses=problems(401, 422, 429))
def list_jobs(
    svc: ServicesDep,
    tenant: Tenant,
    status: Annotated[Status | None, Query(description="only jobs in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JobPage:
    """Your jobs, newest first, `limit` per page."""
    if cursor is not None and not _ID.match(cursor):
        raise InvalidInput("cursor is not a value this API handed out (use next_cursor as it came)")
    page = svc.store.page(tenant, status, limit, cursor)
    return JobPage(items=[JobOut.of(j) for j in page.items], next_cursor=page.next_cursor)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=problems(401, 404, 409, 429))
def cancel_job(svc: ServicesDep, tenant: Tenant, job_id: str) -> JobOut:
    """Cancel a job. Queued: it never runs. Running: it stops at its next check. Finished: 409."""
    job = svc.store.cancel(_check_id(job_id), tenant)
    if job.status == Status.canceled and job.webhook_url:
        svc.queue.webhook(job.id)
    return JobOut.of(job)


@router.get(
    "/jobs/{job_id}/artifacts/{name}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}, "application/json": {}, "image/png": {}}},
        307: {
            "description": "a presigned URL of the object store",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **problems(401, 404, 429),
    },
)
def get_artifact(svc: ServicesDep, tenant: Tenant, job_id: str, name: str) -> Response:
    """Download one artifact of a succeeded job: the file, or a redirect to a short-lived presigned URL."""
    job = svc.store.get(_check_id(job_id), tenant)
    match = next((a for a in job.artifacts or [] if a["name"] == name), None)
    if match is None:
        raise NotFound(f"job {job_id} has no artifact {name[:100]!r}")
    key = match["key"]
    url = svc.storage.presign(key, name)
    if url is not None:
        return RedirectResponse(url, status_code=307)
    suffix = name[name.rfind(".") :] if "." in name else ""
    return StreamingResponse(
        svc.storage.open(key),
        media_type=MEDIA.get(suffix, "application/octet-stream"),
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Content-Length": str(match["size"])},
    )
