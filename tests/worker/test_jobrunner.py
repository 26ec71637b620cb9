"""A job from the store to its artifacts: the code the Celery task and the embedded worker share.

Real parts: SQLite, local storage, the shipped toy model; few steps, so each job takes seconds.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time

import numpy as np
import pytest
import torch

from app import db
from app.db import Job
from app.jobs import new_id
from app.queue import LocalQueue
from app.services import build_services
from app.settings import Settings
from app.storage import input_key
from worker import jobrunner
from worker.registry import Pipelines
from worker.toy import data

QUICK = {"ti_steps": 4, "steps": 6, "bank": 8, "check_every": 1}

pytestmark = pytest.mark.slow


def _png(shape: str, color: str, seed: int) -> bytes:
    buf = io.BytesIO()
    data.render(shape, color, np.random.default_rng(seed)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def svc(tmp_path):
    settings = Settings(data_dir=tmp_path, report_samples=0)
    db.migrate(settings.db_url)
    services = build_services(settings, LocalQueue())
    yield services
    services.close()


@pytest.fixture(scope="module")
def pipelines():
    return Pipelines({"toy-shapes": "toy-shapes"}, "cpu")


def _submit(svc, concept: str = "circle", params: dict | None = None, n: int = 4) -> str:
    job_id = new_id()
    inputs = []
    for i in range(n):
        stored = svc.storage.put(input_key(job_id, i, "png"), _png(concept, list(data.COLORS)[i % 4], i))
        inputs.append({"key": stored.key, "size": stored.size, "sha256": stored.sha256})
    job = Job(
        id=job_id,
        tenant="t",
        concept=concept,
        base_model="toy-shapes",
        request_hash="h",
        params=QUICK if params is None else params,
        inputs=inputs,
    )
    return svc.store.add(job).id


def _te_state(pipe) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}


def test_a_job_succeeds_with_its_artifacts_stored_and_hashed(svc, pipelines):
    job_id = _submit(svc, params={**QUICK})
    assert jobrunner.run_job(svc, pipelines, job_id) == "succeeded"
    job = svc.store.get(job_id)
    assert job.progress == 1.0 and job.attempts == 1 and job.finished_at is not None
    names = {a["name"] for a in job.artifacts}
    assert {
        "pytorch_lora_weights.safetensors",
        "lora_kohya.safetensors",
        "learned_embeds.safetensors",
        "manifest.json",
    } <= names
    for art in job.artifacts:
        assert art["key"].startswith(f"jobs/{job_id}/artifacts/1/")
        assert hashlib.sha256(svc.storage.get(art["key"])).hexdigest() == art["sha256"]
    assert {"encode_s", "learn_s", "erase_s", "total_s"} <= set(job.metrics["timings"])


def test_jobs_never_leak_into_each_other_on_a_shared_pipeline(svc, pipelines, tmp_path):
    before = _te_state(pipelines.get("toy-shapes"))
    first = _submit(svc, "square")
    second = _submit(svc, "circle")
    for job_id in (first, second):
        assert jobrunner.run_job(svc, pipelines, job_id) == "succeeded"
    after = _te_state(pipelines.get("toy-shapes"))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # The second job's adapter is the one a fresh worker makes for it.
    fresh = Pipelines({"toy-shapes": "toy-shapes"}, "cpu")
    again = _submit(svc, "circle")
    assert jobrunner.run_job(svc, fresh, again) == "succeeded"

    def lora_sha(job_id: str) -> str:
        return {a["name"]: a["sha256"] for a in svc.store.get(job_id).artifacts}["pytorch_lora_weights.safetensors"]

    assert lora_sha(second) == lora_sha(again)


def test_cancel_while_running_stops_at_the_next_check(svc, pipelines):
    job_id = _submit(svc, params={**QUICK, "steps": 5000})

    def cancel_once_erasing() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and svc.store.get(job_id).stage != "erase":
            time.sleep(0.05)
        svc.store.cancel(job_id, "t")

    canceler = threading.Thread(target=cancel_once_erasing)
    canceler.start()
    started = time.monotonic()
    assert jobrunner.run_job(svc, pipelines, job_id) == "canceled"
    canceler.join()
    assert time.monotonic() - started < 60  # 5000 steps would take many minutes
    job = svc.store.get(job_id)
    assert job.artifacts == [] and job.finished_at is not None


def test_bad_config_and_missing_inputs_end_failed_with_a_code(svc, pipelines):
    bad = _submit(svc, params={"steps": -1})
    assert jobrunner.run_job(svc, pipelines, bad) == "failed"
    assert svc.store.get(bad).error_code == "invalid_config"
    lost = _submit(svc)
    svc.storage.delete_prefix(f"jobs/{lost}/inputs")
    assert jobrunner.run_job(svc, pipelines, lost) == "failed"
    job = svc.store.get(lost)
    assert job.error_code == "storage_unavailable" and "cannot be read" in job.error_message


def test_a_finished_job_is_not_run_again(svc, pipelines):
    job_id = _submit(svc)
    assert jobrunner.run_job(svc, pipelines, job_id) == "succeeded"
    artifacts = svc.store.get(job_id).artifacts
    assert jobrunner.run_job(svc, pipelines, job_id) == "succeeded"  # a duplicate delivery
    job = svc.store.get(job_id)
    assert job.attempts == 1 and job.artifacts == artifacts
