"""`POST /unlearn`: check everything, store the inputs, commit the job, then enqueue it."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Response, UploadFile
from sqlalchemy.exc import IntegrityError

from app import uploads
from app.api.deps import ServicesDep, Tenant
from app.db import Job
from app.errors import IdempotencyKeyReused, InvalidInput, PayloadTooLarge, Unavailable
from app.jobs import new_id
from app.schemas import JobOut, problems
from app.services import Services
from app.storage import input_key

log = logging.getLogger("unlearn.api")
router = APIRouter(tags=["jobs"])


def _read(files: list[UploadFile], limit: int) -> list[tuple[str, bytes]]:
    out = []
    for i, f in enumerate(files):
        data = f.file.read(limit + 1)
        name = f.filename or f"#{i + 1}"
        if len(data) > limit:
            raise PayloadTooLarge(f"image {name!r} is larger than the limit of {limit} bytes per image")
        out.append((name, data))
    return out


def _replay(existing: Job, digest: str, response: Response) -> JobOut:
    if existing.request_hash != digest:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request; use a new key")
    response.headers["Location"] = f"/jobs/{existing.id}"
    response.headers["Idempotent-Replayed"] = "true"
    return JobOut.of(existing)


def _create(svc: Services, job: Job, images: list[uploads.Upload]) -> Job:
    """Inputs first, then the record; if the record cannot be written, the inputs go again."""
    stored = []
    for i, img in enumerate(images):
        s = svc.storage.put(input_key(job.id, i, img.ext), img.data, img.content_type)
        stored.append({"key": s.key, "size": s.size, "sha256": s.sha256, "width": img.width, "height": img.height})
    job.inputs = stored
    try:
        return svc.store.add(job)
    except BaseException:
        svc.storage.delete_prefix(f"jobs/{job.id}/")
        raise


@router.post(
    "/unlearn",
    status_code=202,
    response_model=JobOut,
    responses={
        202: {"headers": {"Location": {"schema": {"type": "string"}}}},
        **problems(400, 401, 413, 415, 422, 429, 503),
    },
)
def submit(
    svc: ServicesDep,
    tenant: Tenant,
    response: Response,
    concept: Annotated[str, Form(description="the concept to erase, 1-100 characters, e.g. 'star' or 'Snoopy'")],
    images: Annotated[list[UploadFile], File(description="1-20 example images (PNG, JPEG or WebP)")],
    base_model: Annotated[str | None, Form(description="a name from the server's model registry")] = None,
    anchor: Annotated[str | None, Form(description="what the concept should turn into; default neutral")] = None,
    params: Annotated[str | None, Form(description="JSON object of engine config overrides")] = None,
    webhook_url: Annotated[str | None, Form(description="called on success, failure or cancel")] = None,
    idempotency_key: Annotated[str | None, Header(max_length=255, description="replays return the same job")] = None,
) -> JobOut:
    """Start erasing `concept` from `base_model`, learned from `images`.

    Answers 202 with the job and `Location: /jobs/{id}`; poll that until `status` is terminal. The
    same `Idempotency-Key` with the same request returns the same job; with another request, 422.
    """
    s = svc.settings
    concept = uploads.check_text("concept", concept, s.max_concept_chars, required=True)
    anchor = uploads.check_text("anchor", anchor or "", 200, required=False) or None
    model = (base_model or "").strip() or s.default_model
    if model not in s.models:
        raise InvalidInput(f"base_model {model!r} is not served here; available: {', '.join(sorted(s.models))}")
    overrides = uploads.check_params(params)
    hook = uploads.check_webhook_url(webhook_url, s.webhook_allow_private)
    checked = uploads.check_images(_read(images, s.max_image_bytes), s)
    fields: dict[str, Any] = {"concept": concept, "base_model": model, "anchor": anchor, "params": overrides}
    digest = uploads.request_hash({**fields, "webhook_url": hook}, checked)
    if idempotency_key and (existing := svc.store.by_idempotency_key(tenant, idempotency_key)):
        return _replay(existing, digest, response)
    job = Job(
        id=new_id(), tenant=tenant, webhook_url=hook, idempotency_key=idempotency_key, request_hash=digest, **fields
    )
    try:
        job = _create(svc, job, checked)
    except IntegrityError:
        # Another request with the same key won the race; answer as a replay of it.
        existing = svc.store.by_idempotency_key(tenant, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, digest, response)
    try:
        svc.queue.enqueue(job.id)
    except Exception as exc:
        log.warning("enqueue of %s failed: %s", job.id, exc)
        svc.store.delete(job.id)
        svc.storage.delete_prefix(f"jobs/{job.id}/")
        raise Unavailable(
            "the job queue is unavailable; nothing was created, try again shortly", retry_after=5
        ) from None
    response.headers["Location"] = f"/jobs/{job.id}"
    return JobOut.of(job)
