"""Job records and every change of a job's status: the one place that knows the legal transitions.

    queued  -> running | canceled | failed
    running -> running (redelivered after a worker died) | queued (handed back) | succeeded | failed | canceled

Terminal states (succeeded, failed, canceled) never change. Each change is one conditional UPDATE
(`WHERE status IN allowed`), so two processes racing on a job cannot both win.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import Job, utcnow
from app.errors import Conflict, NotFound


class Status(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.succeeded, Status.failed, Status.canceled})
ALLOWED: dict[Status, frozenset[Status]] = {
    Status.running: frozenset({Status.queued, Status.running}),
    Status.queued: frozenset({Status.running}),
    Status.succeeded: frozenset({Status.running}),
    Status.failed: frozenset({Status.queued, Status.running}),
    Status.canceled: frozenset({Status.queued, Status.running}),
}


class IllegalTransition(Conflict):
    code = "illegal_transition"


_clock = {"ms": 0, "seq": 0}
_clock_lock = threading.Lock()


def new_id() -> str:
    """A UUIDv7: 48 bits of milliseconds, then a 12-bit counter within the millisecond, then random bits.

    Ids from one process strictly increase, so "newest first" is simply id descending.
    """
    with _clock_lock:
        ms = max(time.time_ns() // 1_000_000, _clock["ms"])
        seq = _clock["seq"] + 1 if ms == _clock["ms"] else 0
        if seq > 0xFFF:
            ms, seq = ms + 1, 0
        _clock["ms"], _clock["seq"] = ms, seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


@dataclass(frozen=True)
class Page:
    items: list[Job]
    next_cursor: str | None


class JobStore:
    """Reads and writes job records; every status change goes through `_move`."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # Reading
    def get(self, job_id: str, tenant: str | None = None) -> Job:
        with self.sessions() as s:
            job = s.get(Job, job_id)
        if job is None or (tenant is not None and job.tenant != tenant):
            raise NotFound(f"no job {job_id}")
        return job

    def by_idempotency_key(self, tenant: str, key: str) -> Job | None:
        with self.sessions() as s:
            return s.scalars(select(Job).where(Job.tenant == tenant, Job.idempotency_key == key)).first()

    def page(self, tenant: str, status: Status | None, limit: int, cursor: str | None) -> Page:
        """Newest first; `cursor` is the last id of the previous page."""
        q = select(Job).where(Job.tenant == tenant).order_by(Job.id.desc()).limit(limit + 1)
        if status is not None:
            q = q.where(Job.status == status.value)
        if cursor:
            q = q.where(Job.id < cursor)
        with self.sessions() as s:
            rows = list(s.scalars(q))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, rows[-1].id if more and rows else None)

    def counts(self) -> dict[str, int]:
        with self.sessions() as s:
            rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        return {str(status): int(n) for status, n in rows}

    def queued_ids(self, limit: int = 100) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(Job.id).where(Job.status == Status.queued).order_by(Job.id).limit(limit)))

    def running_ids(self) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(Job.id).where(Job.status == Status.running)))

    # Writing
    def add(self, job: Job) -> Job:
        job.status = Status.queued
        with self.sessions() as s, s.begin():
            s.add(job)
        return job

    def delete(self, job_id: str) -> None:
        """Only for a job that was never handed to a worker (its enqueue failed)."""
        with self.sessions() as s, s.begin():
            job = s.get(Job, job_id)
            if job is not None and job.status == Status.queued and job.attempts == 0:
                s.delete(job)

    def _move(self, job_id: str, to: Status, where: Any = None, **values: Any) -> bool:
        """Set status `to` (and `values`) if the job is in a state that may move there; True if it moved."""
        q = update(Job).where(Job.id == job_id, Job.status.in_([s.value for s in ALLOWED[to]]))
        if where is not None:
            q = q.where(where)
        with self.sessions() as s, s.begin():
            moved = s.execute(q.values(status=to.value, **values)).rowcount  # type: ignore[attr-defined]
        return bool(moved)

    def start(self, job_id: str, max_attempts: int) -> Job | None:
        """Claim the job for a run: count the attempt; None if it is terminal (nothing to do).

        A job already `running` was being run by a worker that died (the broker redelivered it).
        Past `max_attempts` starts the job ends failed instead of looping forever.
        """
        job = self.get(job_id)
        if Status(job.status).is_terminal():
            return None
        if job.cancel_requested:
            self.finish_canceled(job_id)
            return None
        if job.attempts >= max_attempts:
            self.fail(
                job_id,
                "worker_lost",
                f"the worker stopped {job.attempts} times while running this job (the limit is {max_attempts}); "
                "it may need more memory or time than the worker has",
            )
            return None
        moved = self._move(
            job_id,
            Status.running,
            where=Job.attempts == job.attempts,
            attempts=job.attempts + 1,
            started_at=job.started_at or utcnow(),
            stage="queued",
            progress=0.0,
        )
        return self.get(job_id) if moved else None

    def progress(self, job_id: str, stage: str, fraction: float) -> None:
        with self.sessions() as s, s.begin():
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == Status.running)
                .values(stage=stage, progress=round(min(max(fraction, 0.0), 1.0), 4))
            )

    def succeed(self, job_id: str, attempt: int, artifacts: list[dict[str, Any]], metrics: dict[str, Any]) -> bool:
        """Record the result of attempt `attempt`; a stale attempt (the job was restarted since) loses."""
        return self._move(
            job_id,
            Status.succeeded,
            where=Job.attempts == attempt,
            artifacts=artifacts,
            metrics=metrics,
            stage="done",
            progress=1.0,
            finished_at=utcnow(),
        )

    def fail(self, job_id: str, code: str, message: str) -> bool:
        return self._move(job_id, Status.failed, error_code=code, error_message=message[:2000], finished_at=utcnow())

    def requeue(self, job_id: str) -> bool:
        """Hand a running job back to the queue (graceful shutdown, or an embedded worker restarting)."""
        return self._move(job_id, Status.queued, stage=None, progress=0.0)

    def cancel(self, job_id: str, tenant: str) -> Job:
        """Queued: canceled now, it never runs. Running: flagged, the worker stops at its next check."""
        job = self.get(job_id, tenant)
        if Status(job.status).is_terminal():
            raise Conflict(f"job {job_id} is already {job.status}; only queued or running jobs can be canceled")
        if not self._move(job_id, Status.canceled, where=Job.status == Status.queued, finished_at=utcnow()):
            with self.sessions() as s, s.begin():
                s.execute(
                    update(Job).where(Job.id == job_id, Job.status == Status.running).values(cancel_requested=True)
                )
        job = self.get(job_id)
        if Status(job.status).is_terminal() and job.status != Status.canceled:
            raise Conflict(f"job {job_id} finished ({job.status}) before it could be canceled")
        return job

    def cancel_requested(self, job_id: str) -> bool:
        with self.sessions() as s:
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    def finish_canceled(self, job_id: str) -> bool:
        return self._move(job_id, Status.canceled, stage=None, finished_at=utcnow())

    def record_webhook(self, job_id: str, delivery: dict[str, Any]) -> None:
        with self.sessions() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(webhook=delivery))

    def durations(self) -> list[tuple[str, float]]:
        """(status, seconds from start to finish) of finished jobs that ran, for /metrics."""
        with self.sessions() as s:
            rows = s.execute(
                select(Job.status, Job.started_at, Job.finished_at).where(
                    Job.finished_at.is_not(None), Job.started_at.is_not(None)
                )
            ).all()
        return [(st, _seconds(a, b)) for st, a, b in rows if a is not None and b is not None]


def _seconds(a: datetime, b: datetime) -> float:
    if a.tzinfo is None or b.tzinfo is None:
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return (b - a).total_seconds()
