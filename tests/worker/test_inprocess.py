"""The embedded worker: runs queued jobs in order, and after a restart finishes what it was running."""

from __future__ import annotations

import time

import pytest

from app import db
from app.queue import LocalQueue
from app.services import build_services
from app.settings import Settings
from tests.worker.test_jobrunner import _submit
from worker.inprocess import InProcessWorker
from worker.registry import Pipelines

pytestmark = pytest.mark.slow


def _wait(svc, job_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = svc.store.get(job_id).status
        if status in {"succeeded", "failed", "canceled"}:
            return status
        time.sleep(0.1)
    raise TimeoutError(job_id)


def test_jobs_left_running_by_a_dead_process_are_finished_after_a_restart(tmp_path):
    settings = Settings(data_dir=tmp_path, report_samples=0)
    db.migrate(settings.db_url)
    svc = build_services(settings, LocalQueue())
    interrupted = _submit(svc, "square")
    svc.store.start(interrupted, settings.max_attempts)  # the process died here
    waiting = _submit(svc, "circle")
    worker = InProcessWorker(svc, Pipelines(settings.models, "cpu"), poll_s=0.2)
    worker.start()
    try:
        assert _wait(svc, interrupted) == "succeeded"
        assert _wait(svc, waiting) == "succeeded"
        later = _submit(svc, "star")
        svc.queue.enqueue(later)
        assert _wait(svc, later) == "succeeded"
    finally:
        worker.stop(timeout=30)
        svc.close()
    assert svc.store.get(interrupted).attempts == 2  # the lost run counts towards the limit
