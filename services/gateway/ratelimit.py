"""Per-key request limits over a fixed one-minute window: in-process by
default, shared through Redis (LIGHTBOX_REDIS_URL) across gateway replicas."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


class MemoryLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def hit(self, bucket: str, limit: int, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        window = int(now // 60)
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((bucket, window), 0) + 1
            self._counts[(bucket, window)] = count
        reset = 60 - int(now % 60)
        return Decision(count <= limit, limit, max(0, limit - count), reset)


class RedisLimiter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=1.0)

    def hit(self, bucket: str, limit: int, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        window = int(now // 60)
        key = f"lightbox:rl:{bucket}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
        reset = 60 - int(now % 60)
        return Decision(count <= limit, limit, max(0, limit - count), reset)

    def ping(self) -> None:
        self._redis.ping()


def make_limiter(redis_url: str) -> MemoryLimiter | RedisLimiter:
    return RedisLimiter(redis_url) if redis_url else MemoryLimiter()
