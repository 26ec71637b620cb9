"""What the API answers with: the job as DESIGN.md defines it. Pydantic only (workers use it for webhooks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from app.db import Job


class ErrorOut(BaseModel):
    code: str = Field(description="stable, machine-readable, e.g. invalid_input, worker_lost, canceled")
    message: str = Field(description="what went wrong, for a person")


class ArtifactOut(BaseModel):
    name: str
    size: int = Field(description="bytes")
    sha256: str
    url: str = Field(description="download path on this API (answers with the file or a presigned redirect)")


class JobOut(BaseModel):
    id: str
    status: str = Field(description="queued, running, succeeded, failed or canceled; terminal states never change")
    stage: str | None = Field(description="what the worker is doing: queued, load, token, bank, erase, report, done")
    progress: float = Field(description="0..1 within the whole job")
    concept: str
    base_model: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: ErrorOut | None
    metrics: dict[str, Any] = Field(description="timings by stage and the report's scores")
    artifacts: list[ArtifactOut]
    webhook: dict[str, Any] | None = Field(None, description="delivery record of the webhook, if one was asked for")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            status=job.status,
            stage=job.stage,
            progress=job.progress,
            concept=job.concept,
            base_model=job.base_model,
            created_at=_utc(job.created_at),
            started_at=_utc(job.started_at) if job.started_at else None,
            finished_at=_utc(job.finished_at) if job.finished_at else None,
            error=ErrorOut(code=job.error_code, message=job.error_message or "") if job.error_code else None,
            metrics=job.metrics or {},
            artifacts=[
                ArtifactOut(
                    name=a["name"], size=a["size"], sha256=a["sha256"], url=f"/jobs/{job.id}/artifacts/{a['name']}"
                )
                for a in job.artifacts or []
            ],
            webhook=job.webhook,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page; null on the last")


def _utc(t: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written in UTC.
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is answered."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="stable, machine-readable: invalid_input, not_found, payload_too_large, ...")
    errors: list[dict[str, Any]] | None = Field(None, description="each invalid field, for validation errors")


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, all problem+json."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {s: {"model": Problem, "content": {"application/problem+json": {"schema": schema}}} for s in statuses}
