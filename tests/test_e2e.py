"""End to end through real processes: the API, the worker, the job store, the broker and the storage.

- Celery: `unlearn serve` + `unlearn worker` on PostgreSQL, Redis and moto's S3 server;
- embedded: `unlearn serve` alone, with no settings but a data directory (SQLite, local files).
The Celery worker compiles its erasures (a CPU worker's default); the embedded one does not.
Each submits 5 circle images with the default config, waits for `succeeded`, downloads the adapter,
checks its sha256, loads it with diffusers' `load_lora_weights` into the toy model and checks that
circles are gone.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import redis

from tests.procs import Proc, children, still_running, wait_ready, wait_status
from tests.realparts import create_database, drop_database, free_port, make_bucket
from worker.erasure import cxx_found
from worker.toy import data, quality
from worker.toy.paths import toy_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _circles(n: int = 5) -> list[tuple[str, tuple[str, bytes, str]]]:
    rng = np.random.default_rng(7)
    colors = list(data.COLORS)
    files = []
    for i in range(n):
        buf = io.BytesIO()
        data.render("circle", colors[i % len(colors)], rng).save(buf, format="PNG")
        files.append(("images", (f"circle{i}.png", buf.getvalue(), "image/png")))
    return files


def _circle_share(pipe, classifier) -> float:
    prompts = quality.prompts_for("a {color} {shape}", "circle", 8)
    labels = quality.classify(classifier, quality.generate(pipe, prompts, seed=11))
    return sum(label == "circle" for label in labels) / len(labels)


def _check_adapter_erases(folder: Path) -> None:
    pipe = quality.load_pipeline(toy_model_dir())
    classifier = quality.load_classifier(toy_model_dir())
    before = _circle_share(pipe, classifier)
    pipe.load_lora_weights(folder)
    after = _circle_share(pipe, classifier)
    assert before >= 0.75, before
    assert after <= 0.25, (before, after)


def _download_all(client: httpx.Client, job: dict, into: Path) -> None:
    into.mkdir()
    for art in job["artifacts"]:
        r = client.get(art["url"], follow_redirects=True)
        assert r.status_code == 200, r.text
        assert hashlib.sha256(r.content).hexdigest() == art["sha256"]
        (into / art["name"]).write_bytes(r.content)


def _run_and_check(stack: SimpleNamespace, tmp_path: Path) -> dict:
    r = stack.client.post("/unlearn", data={"concept": "circle"}, files=_circles())
    assert r.status_code == 202, r.text
    job = wait_status(stack.client, r.json()["id"], {"succeeded", "failed", "canceled"}, 900, stack.procs)
    assert job["status"] == "succeeded", job
    assert job["metrics"]["erase_rate"] is not None
    _download_all(stack.client, job, tmp_path / "adapter")
    _check_adapter_erases(tmp_path / "adapter")
    return job


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory, postgres_server, redis_server, moto_endpoint) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("celery")
    db_url = create_database(postgres_server)
    redis_url = f"{redis_server}/{1 + uuid.uuid4().int % 15}"
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **make_bucket(moto_endpoint),
        "UNLEARN_DATABASE_URL": db_url,
        "UNLEARN_BROKER_URL": redis_url,
        "UNLEARN_QUEUE_NAME": f"unlearn-test-{uuid.uuid4().hex[:8]}",
        "UNLEARN_DATA_DIR": str(tmp / "data"),
        "UNLEARN_DEVICE": "cpu",
        "UNLEARN_REPORT_SAMPLES": "2",
        "UNLEARN_COMPILE": "auto",  # a CPU worker's default: its erasures run compiled
    }
    port = free_port()
    worker = Proc(["worker", "--hostname", f"test-{uuid.uuid4().hex[:6]}@%h"], env, tmp / "worker.log")
    api = Proc(["serve", "--port", str(port)], env, tmp / "api.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", api)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield SimpleNamespace(client=client, procs=[api, worker], env=env)
    finally:
        api.stop()
        worker.stop()
        redis.Redis.from_url(redis_url).flushdb()
        drop_database(postgres_server, db_url)


def test_celery_job_succeeds_and_its_adapter_erases(celery_stack, tmp_path):
    job = _run_and_check(celery_stack, tmp_path)
    # compiled where the machine has a C++ compiler for it (CI does), uncompiled where not
    assert json.loads((tmp_path / "adapter" / "manifest.json").read_text())["compiled"] is cxx_found()
    art = job["artifacts"][0]
    r = celery_stack.client.get(art["url"], follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"].startswith(celery_stack.env["UNLEARN_S3_ENDPOINT_URL"])


def test_celery_cancel_while_running_and_while_queued(celery_stack):
    client, procs = celery_stack.client, celery_stack.procs
    long = client.post("/unlearn", data={"concept": "circle", "params": '{"steps": 10000}'}, files=_circles())
    running = wait_status(client, long.json()["id"], {"stage:erase"}, 300, procs)
    queued = client.post("/unlearn", data={"concept": "square"}, files=_circles()).json()
    assert queued["status"] == "queued"  # one task at a time per worker
    assert client.post(f"/jobs/{queued['id']}/cancel").json()["status"] == "canceled"
    assert client.post(f"/jobs/{running['id']}/cancel").json()["status"] == "running"
    assert wait_status(client, running["id"], {"canceled", "succeeded", "failed"}, 120, procs)["status"] == "canceled"
    # The worker then takes the canceled job's message and leaves it alone.
    follow = client.post(
        "/unlearn", data={"concept": "circle", "params": '{"steps": 2, "ti_steps": 2}'}, files=_circles()
    )
    wait_status(client, follow.json()["id"], {"succeeded"}, 300, procs)
    never = client.get(f"/jobs/{queued['id']}").json()
    assert never["status"] == "canceled" and never["started_at"] is None and never["artifacts"] == []
    assert client.post(f"/jobs/{running['id']}/cancel").status_code == 409


def test_embedded_server_end_to_end(tmp_path):
    port = free_port()
    env = {"UNLEARN_DATA_DIR": str(tmp_path / "data"), "UNLEARN_REPORT_SAMPLES": "2"}
    api = Proc(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", api)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            job = _run_and_check(SimpleNamespace(client=client, procs=[api]), tmp_path)
        helpers = children(api.popen.pid)
        assert helpers  # the worker process (and multiprocessing's resource tracker)
    finally:
        api.stop()
    assert api.popen.returncode is not None
    assert not still_running(helpers, timeout=15), "orphaned processes after SIGTERM"
    assert (tmp_path / "data" / "unlearn.db").is_file()
    assert (tmp_path / "adapter" / "report.png").read_bytes().startswith(b"\x89PNG")
    stored = tmp_path / "data" / "files" / "jobs" / job["id"]
    assert sorted(p.name for p in (stored / "inputs").iterdir()) == [f"{i:02d}.png" for i in range(5)]
