"""The clients a process needs (job store, artifact storage, queue), built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import db
from app.jobs import JobStore
from app.queue import JobQueue, make_queue
from app.ratelimit import Limiter
from app.settings import Settings
from app.storage import Storage, make_storage


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: JobStore
    storage: Storage
    queue: JobQueue
    limiter: Limiter

    def close(self) -> None:
        self.engine.dispose()


def build_services(settings: Settings, queue: JobQueue | None = None) -> Services:
    engine = db.connect(settings.db_url)
    sessions = db.sessions(engine)
    store, storage = JobStore(sessions), make_storage(settings)
    queue = queue or make_queue(settings)
    return Services(settings, engine, sessions, store, storage, queue, Limiter(settings.broker_url))
