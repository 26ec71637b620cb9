"""Latency of the embedded server under load (prints JSON).

    python bench/api_load.py [--seconds 30] [--pollers 100] [--submitters 10] [--images 5] [--size 512]
                             [--worker on|off]

Starts `unlearn serve` (the embedded default: SQLite, local files, the in-process worker) on a free
port in a temporary data directory; `--pollers` clients loop on `GET /jobs/{id}` while
`--submitters` clients loop on `POST /unlearn` with `--images` JPEGs of `--size` px each, each client
sending one request per `--interval` seconds (as pollers do; 0 = back to back, which measures
throughput: with N clients and no pause, latency is N / throughput by Little's law). Reports
p50/p90/p99/max latency per route and every error. With `--worker on` (the default, as users run
it) the erasures the submissions start run in the server's process while it is measured; `--worker
off` starts the server with UNLEARN_BROKER_URL pointing at Redis (no in-process worker; nothing
consumes the queue), which shows the API alone. Targets: p99 <= 20 ms (GET), <= 150 ms (POST), 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

GET, POST = "GET /jobs/{id}", "POST /unlearn"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _jpeg(size: int, seed: int) -> bytes:
    """A photo-like JPEG: smooth colour gradients plus mild noise (~50-100 KB at 512 px)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * x + seed), np.cos(5 * y - seed), np.sin(4 * (x + y))], -1) * 0.4 + 0.5
    img = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((img * 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "n": len(values),
        "p50_ms": round(q[49] * 1000, 2),
        "p90_ms": round(q[89] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


async def _load(base: str, args: argparse.Namespace, files: list[tuple[str, tuple[str, bytes, str]]]) -> dict:
    limits = httpx.Limits(max_connections=args.pollers + args.submitters + 5)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        first = await client.post("/unlearn", data={"concept": "warmup"}, files=files)
        first.raise_for_status()
        job_url = first.headers["location"]
        lat: dict[str, list[float]] = {GET: [], POST: []}
        errors: list[str] = []
        stop = time.monotonic() + args.seconds

        async def client_loop(
            route: str, expected: int, send: Callable[[int], Awaitable[httpx.Response]], offset: float
        ) -> None:
            """One client: a request per interval (started `offset` into the first), timed and checked."""
            await asyncio.sleep(offset)
            n = 0
            while time.monotonic() < stop:
                began = time.monotonic()
                t = time.perf_counter()
                try:
                    status: object = (await send(n)).status_code
                except httpx.HTTPError as exc:
                    status = exc
                lat[route].append(time.perf_counter() - t)
                if status != expected:
                    errors.append(f"{route}: {status!r}")
                n += 1
                await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - began)))

        def poll(_n: int) -> Awaitable[httpx.Response]:
            return client.get(job_url)

        def submitter(i: int) -> Callable[[int], Awaitable[httpx.Response]]:
            return lambda n: client.post("/unlearn", data={"concept": f"concept {i} {n}"}, files=files)

        await asyncio.gather(
            *[client_loop(GET, 200, poll, args.interval * k / args.pollers) for k in range(args.pollers)],
            *[
                client_loop(POST, 202, submitter(i), args.interval * i / args.submitters)
                for i in range(args.submitters)
            ],
        )
    return {"routes": {k: _percentiles(v) for k, v in lat.items()}, "errors": len(errors), "error_samples": errors[:5]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--pollers", type=int, default=100)
    p.add_argument("--submitters", type=int, default=10)
    p.add_argument("--images", type=int, default=5)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--worker", choices=["on", "off"], default="on")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between one client's requests; 0 = no pause")
    args = p.parse_args()
    files = [("images", (f"img{i}.jpg", _jpeg(args.size, i), "image/jpeg")) for i in range(args.images)]
    port = _port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")}
        env.update(UNLEARN_DATA_DIR=tmp, UNLEARN_PORT=str(port))
        if args.worker == "off":
            env.update(UNLEARN_BROKER_URL="redis://127.0.0.1:6379/14", UNLEARN_QUEUE_NAME=f"bench-{uuid.uuid4().hex}")
        log = Path(tmp) / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen([sys.executable, "-m", "worker.cli", "serve"], env=env, stdout=out, stderr=out)
            try:
                base = f"http://127.0.0.1:{port}"
                for _ in range(300):
                    try:
                        if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                result = asyncio.run(_load(base, args, files))
                metrics = httpx.get(f"{base}/metrics").text
            finally:
                server.terminate()
                server.wait(30)
        if args.worker == "off":
            import redis

            redis.Redis.from_url(env["UNLEARN_BROKER_URL"]).flushdb()
    jobs = {
        line.split('"')[1]: float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("unlearn_jobs{")
    }
    print(
        json.dumps(
            {
                "bench": "api_load",
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "params": vars(args),
                "upload_bytes_per_post": sum(len(f[1][1]) for f in files),
                **result,
                "jobs_after": jobs,
                "targets": {"GET p99_ms": 20, "POST p99_ms": 150, "errors": 0},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
