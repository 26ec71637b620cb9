"""Per-API-key rate limits: fixed one-minute windows, counted in Redis when there is a broker
(shared by every API replica), in memory otherwise. Over the limit: 429 with Retry-After.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from app.errors import AppError


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"


class Limiter:
    def __init__(self, redis_url: str = "") -> None:
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def _incr(self, key: str) -> int:
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, 120)
                return int(pipe.execute()[0])
            except Exception:
                pass  # the broker is down: /readyz says so; requests are not refused for it
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts.clear()
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def hit(self, who: str, bucket: str, per_minute: int) -> None:
        """Count one request of `who` in `bucket`; RateLimited past `per_minute` (0 = no limit)."""
        if per_minute <= 0:
            return
        now = time.time()
        window = int(now // 60)
        if self._incr(f"unlearn:rl:{bucket}:{who}:{window}") > per_minute:
            retry = max(1, int(60 - now % 60) + 1)
            raise RateLimited(
                f"more than {per_minute} {bucket} requests in a minute for this API key; retry in {retry} s",
                retry_after=retry,
            )
