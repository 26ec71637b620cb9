"""Webhooks on terminal states, signed per Standard Webhooks (webhook-id, -timestamp, -signature).

The signature is `v1,` + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")), the secret being
the base64 after `whsec_`. Each delivery attempt is recorded on the job (`job.webhook`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from app.db import Job
from app.errors import InvalidInput
from app.jobs import JobStore
from app.schemas import JobOut
from app.settings import Settings
from app.uploads import check_webhook_url

log = logging.getLogger("unlearn.webhooks")

USER_AGENT = "unlearn-webhooks/1"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def payload(job: Job) -> bytes:
    """The event: its type, when, and the job as GET /jobs/{id} shows it."""
    data = JobOut.of(job).model_dump(mode="json")
    return json.dumps({"type": f"job.{job.status}", "timestamp": int(time.time()), "data": data}).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer, not something to follow (the target was never checked)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body`; the HTTP status (redirects are not followed)."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def deliver_once(store: JobStore, job_id: str, secret: str, timeout: float, allow_private: bool = False) -> bool:
    """One delivery attempt, recorded on the job; True when the receiver answered 2xx.

    The URL's host is resolved and checked again here, not only at submission: a name that
    resolved to a public address then may point at an internal one now (DNS rebinding).
    """
    job = store.get(job_id)
    record = dict(job.webhook or {"attempts": 0})
    data = payload(job)
    msg_id = f"msg_{job.id}_{job.status}"
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
    }
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, ts, data)
    try:
        check_webhook_url(job.webhook_url, allow_private)
        code: int | None = post(str(job.webhook_url), data, headers, timeout)
        error = None if code is not None and 200 <= code < 300 else f"HTTP {code}"
    except InvalidInput as exc:
        code, error = None, exc.detail[:300]
    except (OSError, ValueError) as exc:
        code, error = None, f"{type(exc).__name__}: {exc}"[:300]
    ok = error is None
    record.update(
        attempts=int(record["attempts"]) + 1,
        last_status_code=code,
        last_error=error,
        last_attempt_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        delivered=ok,
        id=msg_id,
    )
    store.record_webhook(job_id, record)
    return ok


def backoff(attempt: int, first: float) -> float:
    return first * 2**attempt


def deliver(store: JobStore, job_id: str, settings: Settings, stop: threading.Event) -> bool:
    """Deliver with retries and doubling delays (the embedded server's way; Celery schedules its own)."""
    secret = settings.webhook_secret.get_secret_value()
    timeout, private = settings.webhook_timeout_s, settings.webhook_allow_private
    for attempt in range(settings.webhook_attempts):
        if deliver_once(store, job_id, secret, timeout, private):
            return True
        if stop.wait(backoff(attempt, settings.webhook_backoff_s)):
            return False
    log.warning("webhook of job %s not delivered after %d attempts", job_id, settings.webhook_attempts)
    return False


def deliver_in_background(store: JobStore, settings: Settings, stop: threading.Event) -> Callable[[str], None]:
    """A LocalQueue webhook listener: each delivery in a thread of its own."""

    def start(job_id: str) -> None:
        threading.Thread(target=deliver, args=(store, job_id, settings, stop), daemon=True).start()

    return start
