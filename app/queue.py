"""How the API hands work to the workers, by task name only (the API never imports worker code).

- `CeleryQueue`: Celery on Redis, for production. `celery_config` is shared with the worker so both
  sides agree on the visibility timeout (the smallest one on a broker wins, celery#5935).
- `LocalQueue`: the embedded default. The job table is the queue; an in-process worker listens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from app.settings import Settings

RUN_TASK = "unlearn.run_job"
WEBHOOK_TASK = "unlearn.deliver_webhook"


class JobQueue(Protocol):
    def enqueue(self, job_id: str) -> None: ...
    def webhook(self, job_id: str) -> None: ...
    def ping(self) -> None: ...
    def depth(self) -> int | None: ...


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for long GPU tasks (see FACTS.md, "Service pitfalls")."""
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_time_limit_s,
        "task_default_queue": settings.queue_name,
        "task_routes": {RUN_TASK: {"queue": settings.queue_name}, WEBHOOK_TASK: {"queue": settings.queue_name}},
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
        "task_ignore_result": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


class CeleryQueue:
    def __init__(self, settings: Settings) -> None:
        from celery import Celery

        self.settings = settings
        self.celery = Celery("unlearn-api")
        self.celery.conf.update(celery_config(settings))
        self._redis: Any = None

    def enqueue(self, job_id: str) -> None:
        self.celery.send_task(RUN_TASK, args=[job_id], queue=self.settings.queue_name)

    def webhook(self, job_id: str) -> None:
        self.celery.send_task(WEBHOOK_TASK, args=[job_id, 0], queue=self.settings.queue_name)

    def _client(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
        return self._redis

    def ping(self) -> None:
        self._client().ping()

    def depth(self) -> int | None:
        return int(self._client().llen(self.settings.queue_name))


class LocalQueue:
    """The embedded default's queue: queued rows are the queue; listeners (the in-process worker) wake up."""

    def __init__(self) -> None:
        self.on_enqueue: list[Callable[[str], None]] = []
        self.on_webhook: list[Callable[[str], None]] = []

    def enqueue(self, job_id: str) -> None:
        for listener in self.on_enqueue:
            listener(job_id)

    def webhook(self, job_id: str) -> None:
        for listener in self.on_webhook:
            listener(job_id)

    def ping(self) -> None:
        return None

    def depth(self) -> int | None:
        return None  # counted from the job table by the caller


def make_queue(settings: Settings) -> JobQueue:
    return CeleryQueue(settings) if settings.broker_url else LocalQueue()
