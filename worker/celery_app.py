"""The Celery application of `unlearn worker`: long GPU tasks, one at a time per process.

Configured from the same settings (and the same `celery_config`) as the API's client. CUDA is
never touched in the parent process: pipelines load lazily in the process that runs the task.
"""

from __future__ import annotations

from celery import Celery

from app.queue import celery_config
from app.settings import get_settings


def make_celery() -> Celery:
    settings = get_settings()
    if not settings.broker_url:
        raise ValueError(
            "UNLEARN_BROKER_URL is not set; `unlearn worker` needs a broker (e.g. redis://localhost:6379/0)"
        )
    app = Celery("unlearn-worker", include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    return app


celery = make_celery()
