"""One job, start to finish: claim it, fetch its inputs, erase, upload the artifacts, record the outcome.

The Celery task and the embedded in-process worker both call `run_job`; it is the only place
where the engine meets the job store and the artifact storage.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.jobs import Status
from app.services import Services
from app.storage import artifact_key
from worker.registry import Pipelines

log = logging.getLogger("unlearn.worker")

# Share of the whole job each engine stage takes (for one progress number).
STAGES = {
    "fetch": (0.0, 0.02),
    "encode": (0.02, 0.03),
    "learn": (0.03, 0.12),
    "erase": (0.12, 0.85),
    "report": (0.85, 0.97),
    "upload": (0.97, 1.0),
}
CONTENT_TYPES = {".json": "application/json", ".png": "image/png"}


class StorageFailed(Exception):
    """Inputs could not be read or artifacts written after the storage client's retries."""


def _throttled(fn: Callable[[], Any], every_s: float) -> Callable[[], Any]:
    last: list[float] = [float("-inf")]
    value: list[Any] = [None]

    def call() -> Any:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0], value[0] = now, fn()
        return value[0]

    return call


def _reporter(svc: Services, job_id: str) -> Callable[[str, float], None]:
    state: dict[str, Any] = {"at": 0.0, "stage": None}

    def report(stage: str, fraction: float) -> None:
        # A new stage is written at once (a client sees every stage); within one, twice a second at most.
        lo, hi = STAGES.get(stage, (0.0, 1.0))
        now = time.monotonic()
        if stage != state["stage"] or now - state["at"] >= 0.5 or fraction >= 1.0:
            state["at"], state["stage"] = now, stage
            svc.store.progress(job_id, stage, lo + (hi - lo) * fraction)

    return report


def _fetch(svc: Services, inputs: list[dict[str, Any]], into: Path) -> list[Path]:
    paths = []
    for item in inputs:
        path = into / Path(item["key"]).name
        try:
            path.write_bytes(svc.storage.get(item["key"]))
        except Exception as exc:
            raise StorageFailed(f"input {item['key']} cannot be read from storage: {type(exc).__name__}") from exc
        paths.append(path)
    return paths


def _upload(svc: Services, job_id: str, attempt: int, out: Path) -> list[dict[str, Any]]:
    uploaded = []
    for path in sorted(out.iterdir()):
        key = artifact_key(job_id, attempt, path.name)
        try:
            stored = svc.storage.put_file(key, path, CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        except Exception as exc:
            raise StorageFailed(f"artifact {path.name} cannot be written to storage: {type(exc).__name__}") from exc
        uploaded.append({"name": path.name, "key": key, "size": stored.size, "sha256": stored.sha256})
    return uploaded


def _drop_earlier_attempts(svc: Services, job_id: str, attempt: int) -> None:
    """Files a killed attempt uploaded before it died: the job lists only the finished set, so drop them."""
    for earlier in range(1, attempt):
        try:
            svc.storage.delete_prefix(artifact_key(job_id, earlier, ""))
        except Exception as exc:
            log.warning("job %s: leftovers of attempt %d not deleted: %s", job_id, earlier, exc)


def _metrics(manifest: dict[str, Any], out: Path) -> dict[str, Any]:
    metrics: dict[str, Any] = {"timings": manifest.get("timings", {}), "losses": manifest.get("losses", {})}
    report = out / "report.json"
    if report.is_file():
        scores = json.loads(report.read_text())
        metrics.update({k: scores.get(k) for k in ("erase_rate", "erase_rate_before", "preservation")})
    return metrics


def run_job(svc: Services, pipelines: Pipelines, job_id: str) -> str:
    """Run `job_id` once (or nothing, if it is already terminal); returns its status afterwards.

    Errors the engine or the storage raise on purpose end the job `failed` with their code; anything
    else propagates, for the caller to record (`fail_unexpected`).
    """
    from worker.erasure import run_erasure
    from worker.unlearning import Canceled, UnlearnConfig, UnlearnError

    job = svc.store.start(job_id, svc.settings.max_attempts)
    if job is None:
        return finish(svc, job_id)
    attempt = job.attempts
    report = _reporter(svc, job_id)
    cancel = _throttled(lambda: svc.store.cancel_requested(job_id), 1.0)
    log.info("job %s: attempt %d, concept %r on %s", job_id, attempt, job.concept, job.base_model)
    try:
        with tempfile.TemporaryDirectory(prefix=f"unlearn-{job_id}-") as tmp:
            report("fetch", 0.0)
            images = _fetch(svc, job.inputs, Path(tmp))
            overrides = {**job.params, **({"anchor": job.anchor} if job.anchor else {})}
            config = UnlearnConfig.from_overrides(overrides)
            source = pipelines.source(job.base_model)
            pipe = pipelines.get(job.base_model)
            out = Path(tmp) / "out"
            manifest = run_erasure(
                source,
                job.concept,
                images,
                config,
                out,
                pipe=pipe,
                compile_mode=svc.settings.compile,
                on_progress=report,
                should_cancel=cancel,
                report_samples=svc.settings.report_samples,
            )
            report("upload", 0.0)
            artifacts = _upload(svc, job_id, attempt, out)
            if not svc.store.succeed(job_id, attempt, artifacts, _metrics(manifest, out)):
                log.warning("job %s: attempt %d finished after the job moved on; result dropped", job_id, attempt)
            else:
                _drop_earlier_attempts(svc, job_id, attempt)
    except Canceled:
        svc.store.finish_canceled(job_id)
    except UnlearnError as exc:
        svc.store.fail(job_id, exc.code, str(exc))
    except StorageFailed as exc:
        svc.store.fail(job_id, "storage_unavailable", f"{exc}; check the storage settings and submit again")
    return finish(svc, job_id)


def fail_unexpected(svc: Services, job_id: str, exc: BaseException) -> None:
    log.exception("job %s failed unexpectedly", job_id, exc_info=exc)
    svc.store.fail(job_id, "internal", f"the worker failed unexpectedly ({type(exc).__name__}); it has been logged")
    finish(svc, job_id)


def finish(svc: Services, job_id: str) -> str:
    """The job's status now; a terminal job whose webhook was never tried gets it sent."""
    job = svc.store.get(job_id)
    status = Status(job.status)
    if status.is_terminal() and job.webhook_url and job.webhook is None:
        svc.queue.webhook(job_id)
    return status.value
