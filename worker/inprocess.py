"""The embedded default's worker: `unlearn serve` with no broker runs jobs itself, in a child process.

The job table is the queue: the child takes the oldest queued job, runs it, takes the next. A job
accepted before a crash is picked up again when the child (or the server) restarts: jobs left
`running` are handed back first, their attempt counted, so a job that kills the worker every time
ends `failed` instead of looping.

The model runs in a process of its own (as cog does) rather than a thread of the server: measured
with bench/api_load.py, training in the server's process held the GIL and took GET latency from
p99 10 ms to seconds; and a crash in the model code (out of memory, a native fault) now restarts
the child instead of killing the API.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
from typing import Any

from app import webhooks
from app.queue import LocalQueue
from app.services import Services, build_services
from app.settings import Settings
from worker import jobrunner
from worker.registry import Pipelines

log = logging.getLogger("unlearn.worker")


class JobLoop:
    """Runs queued jobs one at a time until `stop` is set; `wake` cuts the wait for new work short."""

    def __init__(self, svc: Services, pipelines: Pipelines, wake: Any, stop: Any, poll_s: float = 2.0) -> None:
        self.svc, self.pipelines, self.wake, self.stop, self.poll_s = svc, pipelines, wake, stop, poll_s

    def run(self) -> None:
        for job_id in self.svc.store.running_ids():
            # Only this loop runs jobs in the embedded default: a running job is one it was running
            # when it stopped. Its attempt still counts.
            log.info("job %s was running when the worker stopped; queued again", job_id)
            self.svc.store.requeue(job_id)
        while not self.stop.is_set():
            ids = self.svc.store.queued_ids(limit=1)
            if not ids:
                self.wake.wait(self.poll_s)
                self.wake.clear()
                continue
            try:
                jobrunner.run_job(self.svc, self.pipelines, ids[0])
            except Exception as exc:
                jobrunner.fail_unexpected(self.svc, ids[0], exc)


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when the server that started it dies, however it dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it died while this process was starting
        os._exit(1)


def _child(settings: Settings, wake: Any, stop: Any, parent: int) -> None:
    _die_with_parent(parent)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    # The API shares the machine: leave it a core, or its answers wait behind the training's threads.
    torch.set_num_threads(settings.torch_threads or max(1, (os.cpu_count() or 2) - 1))
    queue = LocalQueue()
    svc = build_services(settings, queue)
    queue.on_webhook.append(webhooks.deliver_in_background(svc.store, settings, threading.Event()))
    try:
        JobLoop(svc, Pipelines(settings.models, settings.device), wake, stop).run()
    finally:
        svc.close()


class EmbeddedWorker:
    """Starts the child, wakes it on new jobs, restarts it if it dies, stops it with the server."""

    def __init__(self, settings: Settings, queue: LocalQueue, restart_delay_s: float = 2.0) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA or threads
        self.ctx, self.settings, self.restart_delay_s = ctx, settings, restart_delay_s
        self.wake, self.stop_child = ctx.Event(), ctx.Event()
        self._stopping = threading.Event()
        self.process: Any = None
        self.restarts = 0
        queue.on_enqueue.append(lambda _job_id: self.wake.set())
        self._supervisor = threading.Thread(target=self._supervise, name="unlearn-supervisor", daemon=True)

    def _spawn(self) -> None:
        self.process = self.ctx.Process(
            target=_child,
            args=(self.settings, self.wake, self.stop_child, os.getpid()),
            name="unlearn-worker",
            daemon=True,
        )
        self.process.start()

    def start(self) -> None:
        self._spawn()
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self.process.join(0.5)
            if self.process.is_alive() or self._stopping.is_set():
                continue
            log.error("the worker process exited with %s; restarting it", self.process.exitcode)
            self.restarts += 1
            if self._stopping.wait(self.restart_delay_s):
                return
            self._spawn()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the child to stop after its current step; a running job is taken up again on the next start."""
        self._stopping.set()
        self.stop_child.set()
        self.wake.set()
        if self.process is not None:
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(5)
