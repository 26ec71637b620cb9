"""Reading, listing and canceling jobs; downloading artifacts; auth and tenant isolation."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import httpx

from app import keys
from app.storage import artifact_key
from tests.realparts import settings_from

PROBLEM = "application/problem+json"


def _succeed(api, job_id: str, files: dict[str, bytes]) -> None:
    """Finish a job as a worker would: store its artifacts, then record them."""
    store, storage = api.services.store, api.services.storage
    job = store.start(job_id, max_attempts=3)
    records = []
    for name, data in files.items():
        stored = storage.put(artifact_key(job_id, job.attempts, name), data)
        records.append({"name": name, "key": stored.key, "size": stored.size, "sha256": stored.sha256})
    assert store.succeed(job_id, job.attempts, records, {"erase_rate": 1.0})


def test_jobs_list_newest_first_with_cursor_and_status_filter(api):
    ids = [api.submit(concept=f"c{i}").json()["id"] for i in range(5)]
    api.client.post(f"/jobs/{ids[1]}/cancel")
    page1 = api.client.get("/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page1["items"]] == ids[::-1][:2]
    page2 = api.client.get("/jobs", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    page3 = api.client.get("/jobs", params={"limit": 2, "cursor": page2["next_cursor"]}).json()
    assert [j["id"] for j in page2["items"] + page3["items"]] == ids[::-1][2:]
    assert page3["next_cursor"] is None
    canceled = api.client.get("/jobs", params={"status": "canceled"}).json()["items"]
    assert [j["id"] for j in canceled] == [ids[1]]
    r = api.client.get("/jobs", params={"status": "lost"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert api.client.get("/jobs", params={"cursor": "../../etc"}).status_code == 422


def test_unknown_job_and_route_are_404_problems(api):
    for path in ("/jobs/0190c4a2-0000-7000-8000-000000000000", "/jobs/not-an-id", "/nowhere"):
        r = api.client.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, path


def test_cancel_queued_job_never_runs_and_terminal_is_409(api):
    job_id = api.submit().json()["id"]
    r = api.client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled" and r.json()["finished_at"]
    assert api.services.store.start(job_id, max_attempts=3) is None  # a worker picking it up does nothing
    again = api.client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM


def test_cancel_running_job_flags_it_for_the_worker(api):
    job_id = api.submit().json()["id"]
    api.services.store.start(job_id, max_attempts=3)
    r = api.client.post(f"/jobs/{job_id}/cancel")
    assert r.json()["status"] == "running"
    assert api.services.store.cancel_requested(job_id)


def test_cancel_with_webhook_sends_it(make_api):
    api = make_api(webhook_allow_private=True)  # no DNS here: a loopback receiver stands in
    job_id = api.submit(webhook_url="http://127.0.0.1:9/hook").json()["id"]
    api.client.post(f"/jobs/{job_id}/cancel")
    assert api.webhooks == [job_id]


def test_artifact_streams_from_local_storage_with_its_sha256(api):
    job_id = api.submit().json()["id"]
    data = b"\x00weights" * 1000
    _succeed(api, job_id, {"pytorch_lora_weights.safetensors": data, "report.json": b"{}"})
    job = api.client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    art = {a["name"]: a for a in job["artifacts"]}["pytorch_lora_weights.safetensors"]
    assert art["sha256"] == hashlib.sha256(data).hexdigest() and art["size"] == len(data)
    r = api.client.get(art["url"])
    assert r.status_code == 200 and r.content == data
    assert "attachment" in r.headers["content-disposition"]
    for bad in ("nope.bin", "..%2F..%2Fjobs.db", "%2e%2e"):
        assert api.client.get(f"/jobs/{job_id}/artifacts/{bad}").status_code == 404


def test_artifact_on_s3_redirects_to_a_presigned_url_for_the_public_endpoint(make_api, s3_env, sqlite_url, tmp_path):
    public = s3_env["UNLEARN_S3_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
    env = {
        **s3_env,
        "UNLEARN_S3_PUBLIC_ENDPOINT_URL": public,
        "UNLEARN_DATABASE_URL": sqlite_url,
        "UNLEARN_DATA_DIR": str(tmp_path / "d"),
        "UNLEARN_PRESIGN_TTL_S": "60",
    }
    api = make_api(settings_from(env))
    job_id = api.submit().json()["id"]
    _succeed(api, job_id, {"manifest.json": b'{"concept": "star"}'})
    r = api.client.get(f"/jobs/{job_id}/artifacts/manifest.json", follow_redirects=False)
    assert r.status_code == 307
    url = r.headers["location"]
    assert url.startswith(public + "/") and "X-Amz-Expires=60" in url and job_id in url
    assert httpx.get(url).content == b'{"concept": "star"}'


def test_keys_are_required_and_tenants_see_only_their_own_jobs(make_api):
    api = make_api(auth="keys")
    alice = keys.create(api.services.sessions, "alice")
    bob = keys.create(api.services.sessions, "bob")
    assert api.submit().status_code == 401
    r = api.submit(headers={"Authorization": "Bearer unl_wrong"})
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    job_id = api.submit(headers={"Authorization": f"Bearer {alice}"}).json()["id"]
    _succeed(api, job_id, {"report.json": b"{}"})
    as_bob = {"Authorization": f"Bearer {bob}"}
    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("POST", f"/jobs/{job_id}/cancel"),
        ("GET", f"/jobs/{job_id}/artifacts/report.json"),
    ]:
        r = api.client.request(method, path, headers=as_bob)
        assert r.status_code == 404, path
    assert api.client.get("/jobs", headers=as_bob).json()["items"] == []
    assert api.client.get(f"/jobs/{job_id}", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    assert api.client.get("/healthz").status_code == 200  # health checks need no key


def test_keys_are_stored_hashed(make_api):
    api = make_api(auth="keys")
    key = keys.create(api.services.sessions, "alice")
    with api.services.engine.connect() as conn:
        dump = "\n".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM api_keys"))
    assert key not in dump and keys.digest(key) in dump


def test_readyz_reports_each_dependency(api):
    r = api.client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
        "models": "ok",
    }


def test_readyz_is_503_when_the_broker_is_down(make_api):
    api = make_api(broker_url="redis://127.0.0.1:1/0")
    r = api.client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["broker"].startswith("down")
    assert r.json()["checks"]["database"] == "ok"


def test_metrics_count_jobs_by_status(api):
    for _ in range(2):
        api.submit()
    text = api.client.get("/metrics").text
    assert 'unlearn_jobs{status="queued"} 2.0' in text
    assert "unlearn_queue_depth 2.0" in text


def test_the_api_never_imports_torch():
    code = (
        "import sys, app.api.main, app.uploads; "
        "print('torch' in sys.modules, 'worker.unlearning.engine' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_each_key_is_rate_limited_with_retry_after(make_api):
    api = make_api(auth="keys", rate_limit_per_minute=5, submit_limit_per_minute=2)
    alice = {"Authorization": f"Bearer {keys.create(api.services.sessions, 'alice')}"}
    bob = {"Authorization": f"Bearer {keys.create(api.services.sessions, 'bob')}"}
    assert [api.submit(headers=alice).status_code for _ in range(3)] == [202, 202, 429]
    codes = [api.client.get("/jobs", headers=alice).status_code for _ in range(3)]
    assert codes[-1] == 429 and 200 in codes
    limited = api.client.get("/jobs", headers=alice)
    assert limited.headers["content-type"] == PROBLEM and 1 <= int(limited.headers["retry-after"]) <= 61
    assert api.client.get("/jobs", headers=bob).status_code == 200  # another key has its own budget
    assert api.client.get("/healthz").status_code == 200


def test_security_headers_and_cors_off_unless_configured(make_api):
    api = make_api()
    r = api.client.get("/jobs", headers={"Origin": "https://evil.example"})
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in r.headers["content-security-policy"] and r.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in r.headers
    assert "content-security-policy" not in api.client.get("/docs").headers  # Swagger UI loads its scripts
    allowed = make_api(cors_origins=["https://app.example"])
    r = allowed.client.get("/jobs", headers={"Origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert (
        "access-control-allow-origin"
        not in allowed.client.get("/jobs", headers={"Origin": "https://x.example"}).headers
    )
