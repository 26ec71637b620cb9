"""POST /unlearn: what is accepted, what is refused (and then nothing is created), idempotency."""

from __future__ import annotations

import json

import pytest

from tests.app.conftest import png

PROBLEM = "application/problem+json"


def _no_job_created(api) -> None:
    assert api.client.get("/jobs").json()["items"] == []
    assert api.enqueued == []
    files = api.services.settings.local_dir
    assert not files.exists() or not any(p.is_file() for p in files.rglob("*"))


def test_submit_answers_202_with_location_stores_inputs_and_enqueues(api):
    r = api.submit(concept="  star ", n=3, anchor="a shape", params='{"steps": 50}')
    assert r.status_code == 202
    job = r.json()
    assert r.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued" and job["concept"] == "star" and job["base_model"] == "toy-shapes"
    assert job["error"] is None and job["artifacts"] == []
    assert api.enqueued == [job["id"]]
    stored = api.services.store.get(job["id"])
    assert [i["key"] for i in stored.inputs] == [f"jobs/{job['id']}/inputs/{i:02d}.png" for i in range(3)]
    assert all(api.services.storage.exists(i["key"]) for i in stored.inputs)
    assert stored.params == {"steps": 50} and stored.anchor == "a shape"
    assert api.client.get(r.headers["location"]).json() == job


def test_same_idempotency_key_and_body_returns_the_same_job(api):
    first = api.submit(headers={"Idempotency-Key": "k1"})
    again = api.submit(headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(api.enqueued) == 1
    other = api.submit(headers={"Idempotency-Key": "k2"})
    assert other.json()["id"] != first.json()["id"]


def test_same_idempotency_key_with_another_body_is_422(api):
    api.submit(headers={"Idempotency-Key": "k1"}, concept="star")
    r = api.submit(headers={"Idempotency-Key": "k1"}, concept="circle")
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "idempotency_key_reused"
    assert len(api.client.get("/jobs").json()["items"]) == 1


BAD_FIELDS = [
    ({"concept": ""}, 422, "concept"),
    ({"concept": "   "}, 422, "concept must not be empty"),
    ({"concept": "x" * 101}, 422, "at most 100"),
    ({"concept": "star\x00"}, 422, "control characters"),
    ({"concept": "star\u202e"}, 422, "control characters"),
    ({"concept": "!!!"}, 422, "letter or digit"),
    ({"base_model": "sd-9000"}, 422, "not served here"),
    ({"params": "{"}, 422, "not valid JSON"),
    ({"params": "[1]"}, 422, "JSON object"),
    ({"params": '{"steps": 0}'}, 422, "steps must be between"),
    ({"params": '{"stepz": 10}'}, 422, "unknown config field"),
    ({"params": '{"lr": "fast"}'}, 422, "lr must be a number"),
    ({"anchor": "a" * 201}, 422, "at most 200"),
    ({"webhook_url": "ftp://example.com/hook"}, 422, "http:// or https://"),
    ({"webhook_url": "not a url"}, 422, "http:// or https://"),
    ({"webhook_url": "http://127.0.0.1:8000/hook"}, 422, "loopback"),
    ({"webhook_url": "http://169.254.169.254/latest"}, 422, "private, loopback or reserved"),
    ({"webhook_url": "http://10.1.2.3/hook"}, 422, "private, loopback or reserved"),
    ({"webhook_url": "http://[::1]/hook"}, 422, "private, loopback or reserved"),
    ({"webhook_url": "http://localhost/hook"}, 422, "private, loopback or reserved"),
]


@pytest.mark.parametrize(("fields", "status", "message"), BAD_FIELDS)
def test_bad_fields_are_refused_with_a_problem_and_nothing_is_created(api, fields, status, message):
    r = api.submit(**fields)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and message in body["detail"]
    _no_job_created(api)


def _post_files(api, files, **data):
    return api.client.post("/unlearn", data={"concept": "star", **data}, files=files)


def _truncated_png() -> bytes:
    return png(64)[:-40]


def _bomb_png(side: int = 100_000) -> bytes:
    """A PNG that declares side x side pixels but carries a few bytes of them (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BAD_IMAGES = [
    ([("images", ("a.png", b"", "image/png"))], 422, "empty (0 bytes)"),
    ([("images", ("a.png", b"hello, I am text", "image/png"))], 415, "not a PNG, JPEG or WebP"),
    ([("images", ("a.gif", b"GIF89a" + b"\0" * 64, "image/gif"))], 415, "not a PNG, JPEG or WebP"),
    ([("images", ("a.png", _truncated_png(), "image/png"))], 422, "truncated"),
    ([("images", ("bomb.png", _bomb_png(), "image/png"))], 413, "declares far more pixels"),
    ([("images", ("bomb.png", _bomb_png(5000), "image/png"))], 413, "declares 5000x5000"),
    ([("images", ("tiny.png", png(4), "image/png"))], 422, "at least 8"),
    # A JPEG's magic number in front of a PNG: judged by content, and the content does not decode.
    ([("images", ("x.jpg", b"\xff\xd8\xff" + png(32), "image/jpeg"))], 422, "cannot be decoded as JPEG"),
    ([("images", (f"{i}.png", png(), "image/png")) for i in range(21)], 422, "at most 20"),
]


@pytest.mark.parametrize(("files", "status", "message"), BAD_IMAGES)
def test_bad_images_are_refused_and_nothing_is_created(api, files, status, message):
    r = _post_files(api, files)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM and message in r.json()["detail"]
    _no_job_created(api)


def test_images_are_judged_by_content_not_name(api):
    # A JPEG sent as "photo.png" with a PNG content type is accepted, as the JPEG it is.
    r = _post_files(api, [("images", ("photo.png", png(fmt="JPEG"), "image/png"))])
    assert r.status_code == 202
    assert api.services.store.get(r.json()["id"]).inputs[0]["key"].endswith("00.jpg")


def test_missing_images_is_a_422_problem(api):
    r = api.client.post("/unlearn", data={"concept": "star"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert "images" in r.json()["detail"]


def _padded_png(total: int) -> bytes:
    data = png(64, "white")
    return data + b"\0" * (total - len(data))  # trailing bytes after IEND still decode


def test_size_limits_are_settings(make_api):
    api = make_api(max_image_bytes=2000, max_total_bytes=5000)
    r = _post_files(api, [("images", ("big.png", _padded_png(2001), "image/png"))])
    assert r.status_code == 413 and "per image" in r.json()["detail"]
    r = _post_files(api, [("images", (f"{i}.png", _padded_png(1900), "image/png")) for i in range(3)])
    assert r.status_code == 413 and "total 5700 bytes" in r.json()["detail"]
    _no_job_created(api)


def test_an_oversize_body_is_refused_before_it_is_parsed(make_api):
    api = make_api(max_image_bytes=1024 * 1024, max_total_bytes=1024 * 1024)
    r = _post_files(api, [("images", (f"{i}.png", _padded_png(800_000), "image/png")) for i in range(3)])
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    _no_job_created(api)


def test_pixel_limit_is_a_setting(make_api):
    api = make_api(max_image_pixels=32 * 32)
    r = _post_files(api, [("images", ("a.png", png(64), "image/png"))])
    assert r.status_code == 413 and "declares 64x64" in r.json()["detail"]


def test_enqueue_failure_leaves_nothing_behind(api):
    def broken(_job_id: str) -> None:
        raise ConnectionError("broker down")

    api.services.queue.on_enqueue.insert(0, broken)  # type: ignore[attr-defined]
    r = api.submit()
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM
    assert r.headers["retry-after"] == "5"
    _no_job_created(api)


def test_private_webhooks_are_allowed_only_by_a_setting(make_api):
    api = make_api(webhook_allow_private=True)
    assert api.submit(webhook_url="http://127.0.0.1:9/hook").status_code == 202


def test_openapi_documents_the_form(api):
    spec = api.client.get("/openapi.json").json()
    assert "/unlearn" in spec["paths"] and "/jobs/{job_id}/artifacts/{name}" in spec["paths"]
    assert api.client.get("/docs").status_code == 200
    assert json.dumps(spec).count("Idempotency-Key") >= 1
