"""Fault injection with real processes and real signals: no accepted job is lost, none runs twice.

Each test starts what it breaks: Celery workers (`unlearn worker`), the API (`unlearn serve`), a Redis
server with its append-only file, moto's S3 server, a TCP proxy in front of PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.procs import Proc, celery_stack, children, still_running, wait_ready, wait_status
from tests.realparts import TcpProxy, create_database, drop_database, free_port, make_bucket
from worker.toy import data

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Long enough stages (a second or more each on one core) to be caught and killed in.
QUICK = '{"ti_steps": 40, "steps": 80, "bank": 8, "check_every": 1}'
DONE = {"succeeded", "failed", "canceled"}


def _images(n: int = 4) -> list[tuple[str, tuple[str, bytes, str]]]:
    rng = np.random.default_rng(3)
    out = []
    for i, color in enumerate(list(data.COLORS)[:n]):
        buf = io.BytesIO()
        data.render("circle", color, rng).save(buf, format="PNG")
        out.append(("images", (f"c{i}.png", buf.getvalue(), "image/png")))
    return out


def _submit(client: httpx.Client, params: str = QUICK) -> str:
    r = client.post("/unlearn", data={"concept": "circle", "params": params}, files=_images())
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _kill_pool_child(worker: Proc) -> int:
    """SIGKILL the process running the task (Celery's pool child); its parent starts a new one."""
    pids = children(worker.popen.pid)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def _one_artifact_set(client: httpx.Client, job: dict) -> None:
    names = {a["name"] for a in job["artifacts"]}
    assert {"pytorch_lora_weights.safetensors", "manifest.json"} <= names
    for art in job["artifacts"]:
        body = client.get(art["url"], follow_redirects=True).content
        assert hashlib.sha256(body).hexdigest() == art["sha256"]


@pytest.fixture
def pg(postgres_server):
    url = create_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@pytest.fixture
def stack_env(pg, redis_url, moto_endpoint) -> dict[str, str]:
    return {**make_bucket(moto_endpoint), "UNLEARN_DATABASE_URL": pg, "UNLEARN_BROKER_URL": redis_url}


def _s3_attempt_prefixes(env: dict[str, str], job_id: str) -> set[str]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["UNLEARN_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    listed = s3.list_objects_v2(Bucket=env["UNLEARN_S3_BUCKET"], Prefix=f"jobs/{job_id}/artifacts/")
    return {o["Key"].split("/")[3] for o in listed.get("Contents", [])}


def test_sigkill_of_the_worker_at_ten_points_each_job_succeeds_exactly_once(tmp_path, stack_env):
    stages = ["learn", "erase", "report", "erase", "learn", "report", "erase", "learn", "erase", "report"]
    killed_at = []
    with celery_stack(tmp_path, {**stack_env, "UNLEARN_REPORT_SAMPLES": "2"}) as stack:
        for stage in stages:
            job_id = _submit(stack.client)
            job = wait_status(stack.client, job_id, {f"stage:{stage}"} | DONE, 300, stack.procs, poll_s=0.05)
            assert job["status"] == "running", job
            _kill_pool_child(stack.worker)
            killed_at.append((job["stage"], job["progress"]))
            job = wait_status(stack.client, job_id, DONE, 300, stack.procs)
            assert job["status"] == "succeeded", job
            _one_artifact_set(stack.client, job)
            keys = {a["url"] for a in job["artifacts"]}
            assert len(keys) == len(job["artifacts"])
            # The job lists the finished attempt's files; the killed attempt never uploaded a set.
            assert _s3_attempt_prefixes(stack.env, job_id) == {"2"}, killed_at[-1]
    assert {s for s, _ in killed_at} == {"learn", "erase", "report"}


def test_a_job_that_kills_its_worker_every_time_ends_failed(tmp_path, stack_env):
    with celery_stack(tmp_path, {**stack_env, "UNLEARN_MAX_ATTEMPTS": "2"}) as stack:
        job_id = _submit(stack.client)
        for attempt in (1, 2):
            job = wait_status(stack.client, job_id, {"stage:learn", "stage:erase"} | DONE, 300, stack.procs)
            assert job["status"] == "running"
            _kill_pool_child(stack.worker)
            # Wait for the next delivery (or the end) before killing again.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and attempt == 1:
                if stack.client.get(f"/jobs/{job_id}").json()["stage"] in {"queued", "fetch", "encode"}:
                    break
                time.sleep(0.05)
        job = wait_status(stack.client, job_id, DONE, 300, stack.procs)
        assert job["status"] == "failed" and job["error"]["code"] == "worker_lost", job
        assert "2 times" in job["error"]["message"]
        # The worker is fine afterwards: the next job succeeds.
        assert wait_status(stack.client, _submit(stack.client), DONE, 300, stack.procs)["status"] == "succeeded"


def test_sigterm_lets_the_running_job_finish(tmp_path, stack_env):
    with celery_stack(tmp_path, stack_env) as stack:
        job_id = _submit(stack.client, '{"ti_steps": 10, "steps": 150, "bank": 8}')
        wait_status(stack.client, job_id, {"stage:erase"}, 300, stack.procs)
        stack.worker.popen.send_signal(signal.SIGTERM)
        assert stack.worker.popen.wait(300) == 0
        job = stack.client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job


def _redis(port: int, folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (
            subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip()
            == "PONG"
        ):
            return proc
        time.sleep(0.1)
    raise TimeoutError("redis did not start")


def test_a_redis_restart_loses_no_job_and_readyz_says_when_it_is_down(tmp_path, pg, moto_endpoint):
    folder = tmp_path / "redis"
    folder.mkdir()
    port = free_port()
    redis = _redis(port, folder)
    env = {
        **make_bucket(moto_endpoint),
        "UNLEARN_DATABASE_URL": pg,
        "UNLEARN_BROKER_URL": f"redis://127.0.0.1:{port}/0",
    }
    try:
        with celery_stack(tmp_path, env) as stack:
            running = _submit(stack.client, '{"ti_steps": 10, "steps": 150, "bank": 8}')
            wait_status(stack.client, running, {"stage:erase"}, 300, stack.procs)
            queued = [_submit(stack.client) for _ in range(2)]
            subprocess.run(["redis-cli", "-p", str(port), "shutdown"], capture_output=True)
            redis.wait(30)
            ready = stack.client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("down")
            assert stack.client.get(f"/jobs/{running}").status_code == 200  # the API stays up
            refused = stack.client.post("/unlearn", data={"concept": "circle"}, files=_images())
            assert refused.status_code == 503 and refused.headers["content-type"] == "application/problem+json"
            redis = _redis(port, folder)
            for job_id in [running, *queued]:
                assert wait_status(stack.client, job_id, DONE, 600, stack.procs)["status"] == "succeeded"
            assert stack.client.get("/readyz").status_code == 200
            assert len(stack.client.get("/jobs").json()["items"]) == 3  # the refused one left nothing
    finally:
        redis.terminate()
        redis.wait(10)


def test_s3_down_during_the_upload_fails_the_job_with_an_actionable_error(tmp_path, sqlite_url):
    from moto.server import ThreadedMotoServer

    from app.queue import LocalQueue
    from app.services import build_services
    from tests.realparts import settings_from
    from tests.worker.test_jobrunner import QUICK as QUICK_PARAMS
    from tests.worker.test_jobrunner import _submit as submit_job
    from worker import jobrunner
    from worker.registry import Pipelines

    s3_port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    server.start()
    env = {
        **make_bucket(f"http://127.0.0.1:{s3_port}"),
        "UNLEARN_DATABASE_URL": sqlite_url,
        "UNLEARN_DATA_DIR": str(tmp_path),
        "UNLEARN_REPORT_SAMPLES": "1",
        "UNLEARN_S3_TIMEOUT_S": "2",
        "UNLEARN_S3_ATTEMPTS": "3",
    }
    svc = build_services(settings_from(env), LocalQueue())
    job_id = submit_job(svc, params=QUICK_PARAMS)
    real_progress = svc.store.progress

    def progress(jid: str, stage: str, fraction: float) -> None:
        if stage == "report":
            server.stop()  # the object store goes away after the inputs were read
        real_progress(jid, stage, fraction)

    svc.store.progress = progress  # type: ignore[method-assign]
    started = time.monotonic()
    try:
        assert jobrunner.run_job(svc, Pipelines(svc.settings.models, "cpu"), job_id) == "failed"
    finally:
        server.stop()
    job = svc.store.get(job_id)
    assert job.error_code == "storage_unavailable"
    assert "cannot be written to storage" in job.error_message and "check the storage settings" in job.error_message
    assert job.artifacts == []  # no half-uploaded set is listed
    assert time.monotonic() - started > 1  # boto3 retried before giving up
    svc.close()


def test_postgres_down_is_a_503_problem_and_the_api_recovers_by_itself(tmp_path, pg):
    from fastapi.testclient import TestClient

    from app.api.main import create_app
    from app.queue import LocalQueue
    from app.services import build_services
    from app.settings import Settings

    proxy = TcpProxy(5432)
    proxy.start()
    url = pg.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = Settings(data_dir=tmp_path, database_url=url)
    svc = build_services(settings, LocalQueue())
    with TestClient(create_app(settings, services=svc)) as client:
        job_id = client.post("/unlearn", data={"concept": "star"}, files=_images(1)).json()["id"]
        proxy.stop()
        for r in (
            client.get(f"/jobs/{job_id}"),
            client.get("/jobs"),
            client.post("/unlearn", data={"concept": "star"}, files=_images(1)),
        ):
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json" and r.headers["retry-after"]
        assert client.get("/readyz").json()["checks"]["database"].startswith("down")
        assert client.get("/healthz").status_code == 200
        inputs = settings.local_dir / "jobs"
        assert sorted(p.name for p in inputs.iterdir()) == [job_id]  # the refused submission left no files
        proxy.start()
        assert client.get(f"/jobs/{job_id}").status_code == 200
        assert client.get("/readyz").status_code == 200
    proxy.stop()
    svc.close()


def test_killing_the_embedded_server_takes_its_worker_process_with_it(tmp_path):
    port = free_port()
    api = Proc(["serve", "--port", str(port)], {"UNLEARN_DATA_DIR": str(tmp_path)}, tmp_path / "serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", api)
        helpers = children(api.popen.pid)
        assert helpers
        api.popen.kill()
        api.popen.wait(10)
        assert not still_running(helpers, timeout=10), "orphaned worker processes"
    finally:
        api.stop()
