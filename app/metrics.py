"""Prometheus metrics read from the job store and the broker at scrape time.

The job table is the truth shared by every API and worker process, so nothing is counted in memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from app.jobs import JobStore, Status
from app.queue import JobQueue

BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class JobCollector(Collector):
    def __init__(self, store: JobStore, queue: JobQueue) -> None:
        self.store = store
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        counts = self.store.counts()
        jobs = GaugeMetricFamily("unlearn_jobs", "Jobs by status", labels=["status"])
        for status in Status:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs
        depth = self.queue.depth()
        queued = GaugeMetricFamily("unlearn_queue_depth", "Tasks waiting in the broker (or queued jobs if embedded)")
        queued.add_metric([], depth if depth is not None else counts.get(Status.queued.value, 0))
        yield queued
        hist = HistogramMetricFamily(
            "unlearn_job_duration_seconds", "From start to end of finished jobs", labels=["status"]
        )
        by_status: dict[str, list[float]] = {}
        for name, seconds in self.store.durations():
            by_status.setdefault(name, []).append(seconds)
        for name, values in sorted(by_status.items()):
            values.sort()
            buckets = [(str(b), bisect.bisect_right(values, b)) for b in BUCKETS] + [("+Inf", len(values))]
            hist.add_metric([name], buckets, sum(values))
        yield hist


def registry(store: JobStore, queue: JobQueue) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(JobCollector(store, queue))
    return reg
