"""Celery tasks: thin. They take job ids; `worker.jobrunner` does the work."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from app import webhooks
from app.queue import RUN_TASK, WEBHOOK_TASK
from app.services import Services, build_services
from app.settings import get_settings
from worker import jobrunner
from worker.celery_app import celery
from worker.registry import Pipelines

log = logging.getLogger("unlearn.worker")


@worker_process_init.connect
def _init_process(**_: Any) -> None:
    """In each pool process (never the parent): the thread count; CUDA initialises later, in the task."""
    threads = get_settings().torch_threads
    if threads:
        import torch

        torch.set_num_threads(threads)


@lru_cache
def services() -> Services:
    return build_services(get_settings())


@lru_cache
def pipelines() -> Pipelines:
    settings = get_settings()
    return Pipelines(settings.models, settings.device)


@celery.task(name=RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_job(self: Task, job_id: str) -> str:
    svc = services()
    try:
        return jobrunner.run_job(svc, pipelines(), job_id)
    except SoftTimeLimitExceeded:
        limit = svc.settings.task_soft_time_limit_s
        svc.store.fail(job_id, "timeout", f"the erasure took longer than {limit} s; try fewer steps")
        return jobrunner.finish(svc, job_id)
    except Exception as exc:
        jobrunner.fail_unexpected(svc, job_id, exc)
        return "failed"


@celery.task(name=WEBHOOK_TASK, bind=True, acks_late=True)
def deliver_webhook(self: Task, job_id: str, attempt: int) -> Any:
    svc = services()
    s = svc.settings
    secret = s.webhook_secret.get_secret_value()
    ok = webhooks.deliver_once(svc.store, job_id, secret, s.webhook_timeout_s, s.webhook_allow_private)
    if not ok and attempt + 1 < s.webhook_attempts:
        delay = webhooks.backoff(attempt, s.webhook_backoff_s)
        deliver_webhook.apply_async(args=[job_id, attempt + 1], countdown=delay, queue=s.queue_name)
    return ok
