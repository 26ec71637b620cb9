"""The one module that changes job status: legal moves only, terminal states final, races lost cleanly.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest

from app import db
from app.db import Job
from app.errors import Conflict
from app.jobs import JobStore, Status, new_id


@pytest.fixture
def store(db_url):
    engine = db.connect(db_url)
    yield JobStore(db.sessions(engine))
    engine.dispose()


def _job(store: JobStore, tenant: str = "t") -> str:
    job = store.add(Job(id=new_id(), tenant=tenant, concept="star", base_model="toy-shapes", request_hash="h"))
    return job.id


def test_a_job_runs_to_success_and_stays_there(store):
    job_id = _job(store)
    job = store.start(job_id, max_attempts=3)
    assert job.status == Status.running and job.attempts == 1 and job.started_at is not None
    store.progress(job_id, "erase", 0.5)
    assert store.get(job_id).stage == "erase" and store.get(job_id).progress == 0.5
    assert store.succeed(job_id, 1, [{"name": "a"}], {"x": 1})
    for move in (
        lambda: store.fail(job_id, "x", "y"),
        lambda: store.finish_canceled(job_id),
        lambda: store.requeue(job_id),
        lambda: store.succeed(job_id, 1, [], {}),
    ):
        assert move() is False
    assert store.start(job_id, max_attempts=3) is None
    job = store.get(job_id)
    assert job.status == Status.succeeded and job.artifacts == [{"name": "a"}] and job.finished_at is not None


def test_ids_sort_by_creation(store):
    ids = [_job(store) for _ in range(5)]
    assert ids == sorted(ids)


def test_a_redelivered_job_counts_attempts_and_fails_past_the_limit(store):
    job_id = _job(store)
    for attempt in (1, 2):
        assert store.start(job_id, max_attempts=2).attempts == attempt  # the worker died each time
    assert store.start(job_id, max_attempts=2) is None
    job = store.get(job_id)
    assert job.status == Status.failed and job.error_code == "worker_lost" and "2 times" in job.error_message


def test_a_stale_attempt_cannot_record_its_result(store):
    job_id = _job(store)
    store.start(job_id, max_attempts=3)
    store.start(job_id, max_attempts=3)  # redelivered while the first run was presumed dead
    assert not store.succeed(job_id, 1, [{"name": "old"}], {})
    assert store.succeed(job_id, 2, [{"name": "new"}], {})
    assert store.get(job_id).artifacts == [{"name": "new"}]


def test_cancel_queued_running_and_finished(store):
    queued, running, done = _job(store), _job(store), _job(store)
    assert store.cancel(queued, "t").status == Status.canceled
    store.start(running, 3)
    assert store.cancel(running, "t").status == Status.running and store.cancel_requested(running)
    assert store.finish_canceled(running)
    store.start(done, 3)
    store.fail(done, "boom", "it broke")
    with pytest.raises(Conflict):
        store.cancel(done, "t")


def test_a_canceled_flag_stops_a_redelivered_job(store):
    job_id = _job(store)
    store.start(job_id, 3)
    store.cancel(job_id, "t")
    assert store.start(job_id, 3) is None
    assert store.get(job_id).status == Status.canceled


def test_other_tenants_do_not_see_a_job(store):
    job_id = _job(store, tenant="alice")
    with pytest.raises(LookupError):
        store.get(job_id, "bob")
    with pytest.raises(LookupError):
        store.cancel(job_id, "bob")
    assert store.page("bob", None, 10, None).items == []


def test_status_knows_terminal_states():
    assert {s for s in Status if s.is_terminal()} == {Status.succeeded, Status.failed, Status.canceled}
