"""The embedded default's worker: a thread in the `unlearn serve` process that runs queued jobs in order.

The job table is the queue (app.queue.LocalQueue only wakes the thread), so a job accepted before
the process died is picked up again when it restarts: jobs left `running` are handed back first.
"""

from __future__ import annotations

import logging
import threading

from app import webhooks
from app.queue import LocalQueue
from app.services import Services
from worker import jobrunner
from worker.registry import Pipelines

log = logging.getLogger("unlearn.worker")


class InProcessWorker:
    def __init__(self, svc: Services, pipelines: Pipelines, poll_s: float = 2.0) -> None:
        self.svc = svc
        self.pipelines = pipelines
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="unlearn-worker", daemon=True)
        queue = svc.queue
        if isinstance(queue, LocalQueue):
            queue.on_enqueue.append(lambda _job_id: self._wake.set())
            queue.on_webhook.append(self._webhook)

    def start(self) -> None:
        for job_id in self.svc.store.running_ids():
            # Only this process runs jobs in the embedded default: a running job is one it was
            # running when it stopped. Its attempt still counts.
            self.svc.store.requeue(job_id)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            ids = self.svc.store.queued_ids(limit=1)
            if not ids:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            try:
                jobrunner.run_job(self.svc, self.pipelines, ids[0])
            except Exception as exc:
                jobrunner.fail_unexpected(self.svc, ids[0], exc)

    def _webhook(self, job_id: str) -> None:
        threading.Thread(target=self._deliver, args=(job_id,), name=f"webhook-{job_id}", daemon=True).start()

    def _deliver(self, job_id: str) -> None:
        s = self.svc.settings
        for attempt in range(s.webhook_attempts):
            body = jobrunner.webhook_body(self.svc, job_id)
            secret = s.webhook_secret.get_secret_value()
            if webhooks.deliver_once(self.svc.store, job_id, body, secret, s.webhook_timeout_s):
                return
            if self._stop.wait(webhooks.backoff(attempt, s.webhook_backoff_s)):
                return
        log.warning("webhook of job %s not delivered after %d attempts", job_id, s.webhook_attempts)
