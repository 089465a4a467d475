"""Per-key request limits over a fixed one-minute window: in-process by
default, shared through Redis (LIGHTBOX_REDIS_URL) across gateway replicas.

In-process limits are why one gateway process must not run several uvicorn
workers: each would count separately and a key would get N times its limit.
Scale out with replicas sharing Redis instead."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

WINDOW_S = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


def _decide(count: int, limit: int, now: float) -> Decision:
    reset = WINDOW_S - int(now % WINDOW_S)
    return Decision(count <= limit, limit, max(0, limit - count), reset)


class MemoryLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def hit_sync(self, bucket: str, limit: int, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        window = int(now // WINDOW_S)
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((bucket, window), 0) + 1
            self._counts[(bucket, window)] = count
        return _decide(count, limit, now)

    async def hit(self, bucket: str, limit: int, now: float | None = None) -> Decision:
        return self.hit_sync(bucket, limit, now)

    async def close(self) -> None:
        return None


class RedisLimiter:
    """One INCR per request on a key per bucket and minute, shared by every
    replica. If Redis cannot be reached the request is counted in-process
    instead (a replica-local limit, logged and counted in metrics) rather than
    refusing every request or letting every request through."""

    def __init__(self, url: str, on_error: Callable[[], None] | None = None) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._fallback = MemoryLimiter()
        self._on_error = on_error
        self._last_warning = 0.0

    async def hit(self, bucket: str, limit: int, now: float | None = None) -> Decision:
        import redis

        now = time.time() if now is None else now
        window = int(now // WINDOW_S)
        key = f"lightbox:rl:{bucket}:{window}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, 2 * WINDOW_S)
                count = int((await pipe.execute())[0])
        except (redis.RedisError, OSError) as exc:
            if self._on_error is not None:
                self._on_error()
            if time.monotonic() - self._last_warning > 30:
                self._last_warning = time.monotonic()
                log.warning("Redis rate-limit store unreachable (%s); counting in-process", exc)
            return self._fallback.hit_sync(bucket, limit, now)
        return _decide(count, limit, now)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def make_limiter(
    redis_url: str, on_error: Callable[[], None] | None = None
) -> MemoryLimiter | RedisLimiter:
    return RedisLimiter(redis_url, on_error) if redis_url else MemoryLimiter()
