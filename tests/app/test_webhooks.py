"""Webhooks: Standard Webhooks signatures, deliveries recorded on the job, redirects not followed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from app import db, webhooks
from app.db import Job
from app.jobs import JobStore, new_id


def test_signature_matches_the_standard_webhooks_reference_vector():
    # The example of the Standard Webhooks reference libraries (standard-webhooks/standard-webhooks).
    sig = webhooks.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


class Receiver:
    """An HTTP server on loopback that answers each POST with the next status code of `answers`."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                if code in (301, 302, 307):
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    yield r
    r.server.shutdown()


@pytest.fixture
def store(sqlite_url):
    engine = db.connect(sqlite_url)
    yield JobStore(db.sessions(engine))
    engine.dispose()


def _done_job(store: JobStore, url: str) -> str:
    job = store.add(
        Job(id=new_id(), tenant="t", concept="star", base_model="toy-shapes", request_hash="h", webhook_url=url)
    )
    store.start(job.id, 3)
    store.fail(job.id, "boom", "it broke")
    return job.id


SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_delivery_is_signed_and_recorded(store, receiver):
    job_id = _done_job(store, receiver.url)
    assert webhooks.deliver_once(store, job_id, SECRET, timeout=5, allow_private=True)
    headers, body = receiver.requests[0]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(b"0123456789abcdef0123456789abcdef", signed, hashlib.sha256).digest())
    assert headers["webhook-signature"] == "v1," + expected.decode()
    event = json.loads(body)
    assert event["type"] == "job.failed" and event["data"]["id"] == job_id
    record = store.get(job_id).webhook
    assert record["delivered"] is True and record["attempts"] == 1 and record["last_status_code"] == 200


def test_failures_are_recorded_and_redirects_not_followed(store, receiver):
    receiver.answers = [500, 307]
    job_id = _done_job(store, receiver.url)
    assert not webhooks.deliver_once(store, job_id, SECRET, timeout=5, allow_private=True)
    assert not webhooks.deliver_once(store, job_id, SECRET, timeout=5, allow_private=True)
    record = store.get(job_id).webhook
    assert record["attempts"] == 2 and record["delivered"] is False and record["last_error"] == "HTTP 307"
    assert len(receiver.requests) == 2  # the redirect target was never called
    assert webhooks.deliver_once(store, job_id, SECRET, timeout=5, allow_private=True)
    assert store.get(job_id).webhook["attempts"] == 3


def test_an_unreachable_receiver_is_a_recorded_failure(store):
    from tests.realparts import free_port

    job_id = _done_job(store, f"http://127.0.0.1:{free_port()}/hook")
    assert not webhooks.deliver_once(store, job_id, SECRET, timeout=2, allow_private=True)
    assert "Error" in store.get(job_id).webhook["last_error"]


def test_a_private_address_is_refused_at_delivery_too(store, receiver):
    # Accepted at submission (the setting allowed it then, or DNS said otherwise); refused now.
    job_id = _done_job(store, receiver.url)
    assert not webhooks.deliver_once(store, job_id, SECRET, timeout=5, allow_private=False)
    assert receiver.requests == []
    assert "private, loopback or reserved" in store.get(job_id).webhook["last_error"]


def test_backoff_doubles():
    assert [webhooks.backoff(a, 2.0) for a in range(4)] == [2.0, 4.0, 8.0, 16.0]
