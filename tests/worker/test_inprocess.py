"""The embedded worker: runs queued jobs in order in a child process, and survives that process dying."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from app import db
from app.queue import LocalQueue
from app.services import build_services
from app.settings import Settings
from tests.worker.test_jobrunner import QUICK, _submit
from worker.inprocess import EmbeddedWorker, JobLoop
from worker.registry import Pipelines

pytestmark = pytest.mark.slow


def _wait(svc, job_id: str, wanted: set[str], timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = svc.store.get(job_id)
        if job.status in wanted or f"stage:{job.stage}" in wanted:
            return job.status if job.status in wanted else f"stage:{job.stage}"
        time.sleep(0.1)
    raise TimeoutError(f"{job_id}: {svc.store.get(job_id).status}")


DONE = {"succeeded", "failed", "canceled"}


@pytest.fixture
def svc(tmp_path):
    settings = Settings(data_dir=tmp_path, report_samples=0, device="cpu")
    db.migrate(settings.db_url)
    services = build_services(settings, LocalQueue())
    yield services
    services.close()


def test_the_loop_finishes_what_a_dead_process_was_running_then_the_queue(svc):
    interrupted = _submit(svc, "square")
    svc.store.start(interrupted, svc.settings.max_attempts)  # the process died here
    waiting = _submit(svc, "circle")
    wake, stop = threading.Event(), threading.Event()
    loop = JobLoop(svc, Pipelines(svc.settings.models, "cpu"), wake, stop, poll_s=0.2)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        assert _wait(svc, interrupted, DONE) == "succeeded"
        assert _wait(svc, waiting, DONE) == "succeeded"
    finally:
        stop.set()
        wake.set()
        thread.join(60)
    assert svc.store.get(interrupted).attempts == 2  # the lost run counts towards the limit


def test_a_killed_worker_process_is_restarted_and_the_job_still_succeeds_once(svc):
    worker = EmbeddedWorker(svc.settings, svc.queue, restart_delay_s=0.2)  # type: ignore[arg-type]
    worker.start()
    try:
        job_id = _submit(svc, "circle", params={**QUICK, "steps": 200})
        svc.queue.enqueue(job_id)
        assert _wait(svc, job_id, DONE | {"stage:erase"}) == "stage:erase"
        os.kill(worker.process.pid, signal.SIGKILL)
        assert _wait(svc, job_id, DONE) == "succeeded"
    finally:
        worker.stop()
    job = svc.store.get(job_id)
    assert worker.restarts == 1 and job.attempts == 2
    assert {a["key"].split("/")[3] for a in job.artifacts} == {"2"}  # one artifact set, the finished attempt's
