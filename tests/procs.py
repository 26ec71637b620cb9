"""Real processes for end-to-end tests: `unlearn serve` and `unlearn worker`, stopped afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx


class Proc:
    """A child process whose output goes to a log file (shown when a test fails)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")}
        full_env["UNLEARN_COMPILE"] = "off"  # see tests/conftest.py; a test may ask for it in `env`
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *args], env=full_env, stdout=self._out, stderr=subprocess.STDOUT
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._out.close()


def wait_ready(url: str, proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"process exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout} s:\n{proc.tail()}")


def wait_status(
    client: httpx.Client, job_id: str, wanted: set[str], timeout: float, procs: list[Proc], poll_s: float = 0.25
) -> dict:
    """Poll the job until its status is in `wanted` (or its stage is, for 'stage:erase')."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in wanted or f"stage:{job['stage']}" in wanted:
            return job
        time.sleep(poll_s)
    logs = "\n\n".join(p.tail() for p in procs)
    raise TimeoutError(f"job {job_id} still {job.get('status')}/{job.get('stage')} after {timeout} s:\n{logs}")


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (Celery's pool processes of a worker)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def still_running(pids: list[int], timeout: float) -> list[int]:
    """Those of `pids` still running after up to `timeout` s (a zombie has stopped, though not yet reaped)."""

    def alive(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # the state follows the (name)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@contextmanager
def celery_stack(tmp: Path, env: dict[str, str], api: bool = True) -> Iterator[SimpleNamespace]:
    """`unlearn worker` and (optionally) `unlearn serve` with `env`; a client for the API."""
    from tests.realparts import free_port

    env = {
        "UNLEARN_QUEUE_NAME": f"unlearn-test-{uuid.uuid4().hex[:8]}",
        "UNLEARN_DEVICE": "cpu",
        "UNLEARN_REPORT_SAMPLES": "1",
        "UNLEARN_DATA_DIR": str(tmp / "data"),
        **env,
    }
    port = free_port()
    worker = Proc(["worker", "--hostname", f"test-{uuid.uuid4().hex[:6]}@%h"], env, tmp / "worker.log")
    procs = [worker]
    server = None
    try:
        if api:
            server = Proc(["serve", "--port", str(port)], env, tmp / "api.log")
            procs.append(server)
            wait_ready(f"http://127.0.0.1:{port}/healthz", server)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield SimpleNamespace(client=client, procs=procs, worker=worker, api=server, env=env, tmp=tmp)
    finally:
        for p in procs:
            p.stop()
